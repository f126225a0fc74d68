#pragma once

// The handoff stage: the switch to the real root (root=), or nothing (peinit stays PID 1).

#include <string>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"
#include "peinit/sys/fs.h"

namespace peinit {

class Kernel;

// One of the mounts PID 1 moves into the new root at the handoff, with the directory it goes
// to, opened and checked before anything is moved.
struct MountMove {
    std::string from;         // the initramfs's mount point (under BootPaths::root)
    std::string mount_point;  // as seen from inside the new root: "/run", "/proc", ...
    OwnedFd target;           // the new root's directory; empty when it has none
};

// The mounts moved into the new root, in the order they are moved: /run first (the one the
// handoff cannot do without), then /proc, /sys, /dev.
inline constexpr const char* kMovedMounts[] = {"/run", "/proc", "/sys", "/dev"};

// Opens the new root's directory for each of kMovedMounts (OpenMountPointInRoot: a real
// directory of the new root's own file system; no symbolic link is followed, not even one that
// stays inside the root, since a link on the real root's disk can be re-pointed later by any
// root process and the mount would then not be where its path says). Fails closed, naming the
// directory and what is wrong, when one is a symbolic link, not a directory, leaves the root or
// crosses a mount, and when /run is missing: the handed-over demand-load helper and the sealed
// kernel.modprobe name /run/peinit/..., which must stay the moved tmpfs, never a path that a
// root process without SeLoadDriver could create or re-point on the real root. A missing
// /proc, /sys or /dev is not an error: that mount is dropped (the real init mounts its own).
// Nothing is moved or changed here, so a refusal leaves the initramfs whole for the emergency
// path.
Result<std::vector<MountMove>> OpenMountMoves(const BootPaths& paths, const std::string& new_root);

// Moves each mount onto its opened directory (Kernel::MoveMount, no path resolved again). A
// mount without a directory in the new root is detached instead, with a warning; so is one
// whose move fails, except /run, whose failure fails the handoff (see OpenMountMoves; it is
// moved first, so nothing has been moved then).
Result<void> MoveMounts(Kernel& kernel, std::vector<MountMove>& moves);

// The last stage. With `root=` on the command line (a /dev path, UUID=, PARTUUID=, LABEL=,
// PARTLABEL=; peinit/core/root_spec.h) it takes the root stage's result (or runs PrepareRoot
// itself): the device waited for (10 s, rootwait[=N], rootdelay=), found by tag by probing every
// block device (libblkid: there is no udev in the initramfs); when it does not appear the error
// names what was awaited, the block devices seen and the drivers coldplug matched and did not
// load. It mounts the root when the root stage did not, checks switch_root's guards (we are
// PID 1, / is the initramfs (ramfs/tmpfs), the new root is another device, init= (default
// /sbin/init) is an executable file when resolved inside the new root), moves /run /proc /sys
// /dev into it (onto real directories only: OpenMountMoves, MoveMounts), empties the initramfs,
// switches root and execs init with the words after `--`, with only descriptors 0-2, an empty
// signal mask and default dispositions (LinuxKernel::Exec). It does not return on success. Without
// `root=` it returns Ok: peinit stays PID 1 and starts the services.
Result<void> RunHandoff(BootContext& ctx);

}  // namespace peinit
