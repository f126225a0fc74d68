#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"
#include "peinit/core/root_spec.h"
#include "peinit/sys/block_devices.h"
#include "peinit/sys/fs.h"

namespace peinit {

class Kernel;

// The real root found (and perhaps mounted on /newroot) ahead of the switch.
struct PreparedRoot {
    std::optional<BlockDevice> device;  // nullopt: it did not appear in time
    std::vector<BlockDevice> seen;      // the block devices there were, when it did not
    std::optional<Error> refused;       // root= named more than one device
    // The preparation itself failed (something threw on the root stage's thread): the handoff
    // fails closed with it (the emergency path then locks as the policy asks).
    std::optional<Error> failed;
    // The mount's outcome (the file system type), nullopt when it was left for the handoff.
    std::optional<Result<std::string>> mounted;
};

// The file systems the root is mounted as: rootfstype=, else the type libblkid probed on `dev`
// empty when neither says (the mount then fails naming rootfstype=), never every file
// system the kernel has.
std::vector<std::string> RootTypes(const RootOptions& o, const BlockDevice& dev);

// Waits for root= (rootdelay=, then up to rootwait; polling every block device by tag, libblkid)
// and mounts it on /newroot (rootfstype= or the probed type, rootflags= read by libmount, ro
// unless rw). When `gate` is given, the device is looked for at once but the mount waits until
// the gate opens (RootPreparation::AllowMount), and then happens only when the kernel already
// has every file system it would try (/proc/filesystems), so that mounting loads no module;
// otherwise the mount is left to the caller. The gate's stop flag ends the wait early.
struct MountGate;
PreparedRoot PrepareRoot(const BootPaths& paths, Kernel& kernel, const RootOptions& o,
                         MountGate* gate = nullptr);

// PrepareRoot on a thread of its own, with a gate; the destructor stops the wait and joins.
// Whatever the thread throws is contained: Take returns it as `failed`.
class RootPreparation {
  public:
    RootPreparation(const BootPaths& paths, Kernel& kernel, RootOptions options);
    ~RootPreparation();
    RootPreparation(const RootPreparation&) = delete;
    RootPreparation& operator=(const RootPreparation&) = delete;
    // The boot-time modules are in (the module stage is over): the root may be mounted now.
    void AllowMount();
    // Opens the gate, waits for the result and returns it (once). The thread may still be
    // reading the real init ahead (the destructor joins it; an exec just ends it).
    PreparedRoot Take();

  private:
    RootOptions options_;
    std::unique_ptr<MountGate> gate_;
    PreparedRoot result_;
    std::thread thread_;
};

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

// The stage before the module stage. With root= it starts RootPreparation (ctx.root): the root
// device is looked for while the modules load (its block driver among them), and mounted as
// soon as the module stage is over (it opens the gate) when its file system is in the kernel
// by then, while coldplug, the lock and the handover run. Nothing on the new root is read
// before the handoff, and a file system the kernel does not have yet is mounted by the handoff
// after the lock, as without this stage. Never fails: a bad root= is the handoff's to report.
Result<void> RunRoot(BootContext& ctx);

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
