#pragma once

// The coldplug stage: drivers for the hardware present at boot. Criticality: degrade.
// Runs after the module stage and before lockdown, so that with LockAfterBoot the drivers are
// in before the lock.
//
// Every device's MODALIAS (read from sysfs, peinit/sys/udev.h) goes through the one per-device
// path (LoadDeviceDrivers, peinit/modload/device_load.h, which PID 1's hot-add uses too): resolved
// with libkmod, each module not already live decided by the same policy as a demand load
// (DecideDemandLoad: blacklist in every mode, then AutoLoadPolicy) and loaded through the boot's
// module-loading session (ctx.modload, peinit/modload/session.h: the module stage's libkmod
// context and verified packages, opened here only when the module stage did not run), i.e. only
// from verified signed packages, dependencies first. Each module is attempted at most once even
// when several devices want it.
//
// Coldplug settles before the lock, as `udevadm settle` does: loading a driver can add
// devices (a PCI controller's children, a USB host's devices), whose uevents arrive after the
// enumeration; every round handles the devices added since the last one, until none has been
// added for a quiet period after the last round that loaded a module (a round that loaded
// nothing caused nothing: the queue is looked at once more, without waiting, so a boot whose
// drivers are all in already waits for nothing), within a bound (SettleLimits). When the bound is reached the devices
// left are named in an error line and in the record; the stage still succeeds, so that the
// lockdown stage after it locks as the policy says.
//
// Every attempt and refusal is appended to ctx.module_outcomes with requested-by
// `coldplug <device syspath>`; /run/peinit/coldplug.json (version 1) lists the devices (with the
// round that handled each), what they resolved to, the outcomes and `settle` (rounds, settled,
// quiet_ms, timeout_ms, left); the log gets one line per load, refusal and failure and a summary
// `coldplug done devices=N matched=M loaded=L refused=R failed=F rounds=K settled=yes|no ms=T`.
// Returns an error only when it could not run (no device list, no module tree). RunColdplug
// notes the kernel's uevent count before it enumerates and after it settles
// (ctx.coldplug_seqnum): devices that appear later are PID 1's hot-add (peinit/init/hotplug.h),
// when peinit stays PID 1.

#include <chrono>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"
#include "peinit/sys/udev.h"
#include "peinit/sys/uevent.h"

namespace peinit {

Result<void> RunColdplug(BootContext& ctx);

// How long coldplug waits for devices added by its own loads. The quiet period is short:
// a driver that adds devices while it binds (a bus's children) has queued their uevents when its
// load returns, and waiting catches those that come from a work queue right after; the bound
// keeps a device that never stops adding children from holding the lock back for ever.
struct SettleLimits {
    static constexpr std::chrono::milliseconds kQuiet{100};
    static constexpr std::chrono::milliseconds kTimeout{10000};
    std::chrono::milliseconds quiet = kQuiet;
    std::chrono::milliseconds timeout = kTimeout;
};

// The stage's work on a given device list (tests pass fixture modaliases), then, when `events`
// is given, settling: the devices added since are handled in further rounds until none has come
// for `limits.quiet` after a round that loaded something (none is queued after one that loaded
// nothing), or until `limits.timeout` after the first round; the devices left then are logged
// (error) and recorded (`settle.left`) and put in ctx.coldplug_left.
Result<void> Coldplug(BootContext& ctx, const std::vector<DeviceModalias>& devices,
                      DeviceEvents* events = nullptr, SettleLimits limits = {});

}  // namespace peinit
