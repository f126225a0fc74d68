#pragma once

// The coldplug stage: drivers for the hardware present at boot. Criticality: degrade.
// Runs after the module stage and before lockdown, so that with LockAfterBoot the drivers are
// in before the lock.
//
// Every device's MODALIAS (read from sysfs, peinit/sys/udev.h) is resolved with libkmod; each resolved
// module not already live is decided by the same policy as a demand load (DecideDemandLoad:
// blacklist in every mode, then AutoLoadPolicy) and loaded through the boot's module-loading
// session (ctx.modload, peinit/modload/session.h: the module stage's libkmod context and
// verified packages, opened here only when the module stage did not run), i.e. only from
// verified signed packages, dependencies first. Each module is attempted at most once even when
// several devices want it. Every attempt and refusal is appended to ctx.module_outcomes with
// requested-by `coldplug <device syspath>`; /run/peinit/coldplug.json (version 1) lists the
// devices, what they resolved to and the outcomes; the log gets one line per load, refusal and
// failure and a summary `coldplug done devices=N matched=M loaded=L refused=R failed=F ms=T`.
// Returns an error only when it could not run (no device list, no module tree). RunColdplug
// notes the kernel's uevent count before it enumerates (ctx.coldplug_seqnum): devices that
// appear later are PID 1's hot-add (peinit/init/hotplug.h), when peinit stays PID 1.

#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"
#include "peinit/sys/udev.h"

namespace peinit {

Result<void> RunColdplug(BootContext& ctx);

// The stage's work on a given device list (tests pass fixture modaliases).
Result<void> Coldplug(BootContext& ctx, const std::vector<DeviceModalias>& devices);

}  // namespace peinit
