#pragma once

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

// The last stage. With `root=` on the command line it mounts the real root (rootfstype=,
// rootflags=, ro/rw; the device must appear within rootwait's 10 s), checks switch_root's
// guards (we are PID 1, / is the initramfs (ramfs/tmpfs), the new root is another device, the
// init to run exists there), moves /proc /sys /dev /run into it, empties the initramfs, switches
// root and execs init (init=, default /sbin/init) with the words after `--`. It does not return
// on success. Without `root=` it returns Ok: peinit stays PID 1 and starts the services.
Result<void> RunHandoff(BootContext& ctx);

}  // namespace peinit
