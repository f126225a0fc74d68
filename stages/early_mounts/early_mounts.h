#pragma once

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

// Mounts /proc, /sys, /dev (devtmpfs), /run and /run/peinit (tmpfs), creating the mount points, and
// securityfs on /sys/kernel/security when the kernel has it, and attaches
// the kmsg log sink. Guarantees to later stages: /proc/cmdline, /proc/sys, /sys/module,
// /dev/kmsg and a writable /run exist, and everything logged so far is in the kernel log.
// A filesystem that is already mounted there (EBUSY) counts as mounted.
Result<void> RunEarlyMounts(BootContext& ctx);

}  // namespace peinit
