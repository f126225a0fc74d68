#pragma once

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

// The last stage. With `root=` on the command line (a /dev path, UUID=, PARTUUID=, LABEL=,
// PARTLABEL=; peinit/core/root_spec.h) it waits for the device (10 s, rootwait[=N], rootdelay=),
// finding tags by probing every block device (libblkid: there is no udev in the initramfs);
// when it does not appear the error names what was awaited, the block devices seen and the
// drivers coldplug matched and did not load. It mounts the root (rootfstype= or the probed type,
// rootflags= read by libmount, ro unless rw), checks switch_root's guards (we are PID 1, / is the
// initramfs (ramfs/tmpfs), the new root is another device, init= (default /sbin/init) is an
// executable file when resolved inside the new root), moves /proc /sys /dev /run into it,
// empties the initramfs, switches root and execs init with the words after `--`, with only
// descriptors 0-2, an empty signal mask and default dispositions (LinuxKernel::Exec). It does
// not return on success. Without `root=` it returns Ok: peinit stays PID 1 and starts the
// services.
Result<void> RunHandoff(BootContext& ctx);

}  // namespace peinit
