#pragma once

// Drivers for one device with a MODALIAS: the one path by which coldplug
// (stages/coldplug/coldplug.h, every round of its settle loop) and PID 1's hot-add
// (peinit/init/hotplug.h) give a device its drivers, as booster has one path for every modalias
// event. The MODALIAS is resolved with libkmod; the modules not yet live (and not attempted
// already by the caller's batch) are decided by the demand-load policy (DecideDemandLoad: the
// blacklist in every mode, then AutoLoadPolicy) and loaded by ModloadSession::DemandResolved from
// the verified signed packages, dependencies first. One log line per load, refusal and failure,
// prefixed with the caller's name ("coldplug: loaded virtio_net for /sys/devices/... from
// all.pkg"). The callers keep their own checks (hot-add reads the lock state first) and records.

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/plan.h"
#include "peinit/sys/udev.h"

namespace peinit {

class ModloadSession;

struct DeviceLoad {
    // "loaded" (every driver it resolved to is live now), "present" (they already were or were
    // attempted for an earlier device of the batch), "no-driver" (nothing in the module tree
    // matches), "refused" (the policy refused at least one), "failed" (a load failed, or the
    // MODALIAS or the tree could not be read).
    std::string result;
    std::vector<std::string> modules;  // what the MODALIAS resolved to (empty when not resolved)
    std::string detail;                // the reason, for everything but loaded/present
    // Every module attempted, refused or skipped for it (dependencies included).
    std::vector<ModuleOutcome> outcomes;
    int loaded = 0;
    int refused = 0;
    int failed = 0;
};

// Gives `device` its drivers (above). `attempted` holds the modules the caller's batch has
// attempted so far, each attempted once whichever device wants it first; this call adds its own.
// `who` prefixes the log lines; `origin` names the requester in the outcomes.
DeviceLoad LoadDeviceDrivers(ModloadSession& session, const DeviceModalias& device,
                             const RequestOrigin& origin, std::set<std::string>& attempted,
                             std::string_view who);

}  // namespace peinit
