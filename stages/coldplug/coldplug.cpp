#include "stages/coldplug/coldplug.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "peinit/sys/kernel_release.h"
#include "peinit/record/stages.h"
#include "peinit/sys/record.h"
#include "peinit/sys/uevent.h"
#include "peinit/modload/device_load.h"
#include "peinit/modload/session.h"
#include "stages/stage.h"

namespace peinit {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct DeviceRecord {
    DeviceModalias device;
    std::vector<std::string> resolved;
    std::string error;
    int round = 1;
};

struct SettleRecord {
    int rounds = 0;
    bool settled = true;  // false: the bound was reached with devices left
    SettleLimits limits;
    std::vector<DeviceModalias> left;
};

void WriteRecord(const BootContext& ctx, const std::vector<DeviceRecord>& devices,
                 const std::vector<ModuleOutcome>& outcomes, int64_t total_ms,
                 const SettleRecord& settle, const std::string& error) {
    ColdplugRecord record;
    record.policy = std::string(ToString(ctx.policy.autoload.value));
    record.total_ms = total_ms;
    for (const auto& d : devices) {
        record.devices.push_back(
            {d.device.syspath, d.device.modalias, d.resolved, d.error, d.round});
    }
    for (const auto& o : outcomes) record.modules.push_back(ModuleRow::From(o));
    record.settle.rounds = settle.rounds;
    record.settle.settled = settle.settled;
    record.settle.quiet_ms = settle.limits.quiet.count();
    record.settle.timeout_ms = settle.limits.timeout.count();
    for (const auto& d : settle.left) record.settle.left.push_back({d.syspath, d.modalias});
    record.error = error;
    if (auto r = WriteFileAtomically(ctx.paths.Under(ColdplugRecord::kPath).string(),
                                     record.ToJson());
        !r) {
        spdlog::error("coldplug: cannot write the boot record: {}", r.error().message());
    }
}

}  // namespace

Result<void> Coldplug(BootContext& ctx, const std::vector<DeviceModalias>& devices,
                      DeviceEvents* events, SettleLimits limits) {
    const auto origin = Clock::now();
    auto elapsed_ms = [&] {
        return static_cast<int64_t>(
            std::chrono::duration_cast<milliseconds>(Clock::now() - origin).count());
    };
    std::vector<DeviceRecord> records;
    std::vector<ModuleOutcome> outcomes;
    SettleRecord settle;
    settle.limits = limits;
    if (ctx.kernel_release.empty()) {
        auto release = RunningKernelRelease();
        if (!release) return release.error();
        ctx.kernel_release = *release;
    }
    if (!std::filesystem::exists(ctx.paths.ModulesDir() / ctx.kernel_release / "modules.dep")) {
        spdlog::info(
            "coldplug done devices={} matched=0 loaded=0 refused=0 failed=0 ms={} "
            "(no module tree for {})",
            devices.size(), elapsed_ms(), ctx.kernel_release);
        WriteRecord(ctx, records, outcomes, elapsed_ms(), settle, "no module tree");
        return Ok();
    }
    // The boot's session (the module stage opened it): the same libkmod context and the same
    // verified packages, nothing read or hashed twice.
    if (!ctx.modload || ctx.modload->kernel_release() != ctx.kernel_release) {
        ctx.modload = std::make_shared<ModloadSession>(ctx.kernel, ctx.paths, ctx.kernel_release,
                                                       ctx.policy, ctx.cmdline);
    }
    ModloadSession& session = *ctx.modload;
    if (auto db = session.Db(); !db) {
        Error e = db.error().Context("module tree: ");
        WriteRecord(ctx, records, outcomes, elapsed_ms(), settle, e.message());
        return e;
    }

    std::set<std::string> attempted;  // each module once, whichever device wants it first
    std::set<std::string> handled;    // each device once, whichever round sees it first
    int matched = 0, loaded = 0, refused = 0, failed = 0;
    // One round: the devices not handled yet, each through the one per-device path.
    auto round = [&](const std::vector<DeviceModalias>& batch) {
        ++settle.rounds;
        for (const DeviceModalias& dev : batch) {
            if (!handled.insert(dev.syspath).second) continue;
            DeviceLoad load = LoadDeviceDrivers(
                session, dev, RequestOrigin::Coldplug(dev.syspath), attempted, "coldplug");
            if (!load.modules.empty()) ++matched;
            loaded += load.loaded;
            refused += load.refused;
            failed += load.failed;
            records.push_back({dev, std::move(load.modules),
                               load.result == "failed" && load.outcomes.empty() ? load.detail
                                                                                : std::string(),
                               settle.rounds});
            for (auto& o : load.outcomes) {
                outcomes.push_back(o);
                ctx.module_outcomes.push_back(std::move(o));
            }
        }
    };
    auto unhandled = [&](std::vector<DeviceModalias> batch) {
        std::erase_if(batch, [&](const DeviceModalias& d) { return handled.count(d.syspath); });
        return batch;
    };
    round(devices);
    // Settle, as `udevadm settle` does: the loads above can add devices (a bus driver's
    // children, at once or from a work queue); each round's devices get their drivers, until no
    // device has been added for the quiet period after the last load, within the bound. A round
    // that loaded nothing caused nothing: what is queued is looked at once more, without waiting.
    if (events != nullptr) {
        const auto deadline = Clock::now() + limits.timeout;
        int loaded_before = 0;
        while (true) {
            const bool waits = loaded > loaded_before;
            const auto now = Clock::now();
            if (now >= deadline) {
                settle.left = unhandled(events->Added(milliseconds(0)));
                settle.settled = settle.left.empty();
                break;
            }
            const milliseconds wait =
                waits ? std::min(limits.quiet, std::chrono::ceil<milliseconds>(deadline - now))
                      : milliseconds(0);
            std::vector<DeviceModalias> added = unhandled(events->Added(wait));
            if (added.empty()) {
                if (waits && wait < limits.quiet) continue;  // the bound came first: look again
                break;  // quiet for the whole period (or nothing to wait for): settled
            }
            loaded_before = loaded;
            round(added);
        }
    }
    const int64_t total_ms = elapsed_ms();
    if (!settle.settled) {
        std::string names;
        for (const auto& d : settle.left) {
            names += (names.empty() ? "" : ", ") + d.syspath + " (" + d.modalias + ")";
        }
        spdlog::error("coldplug: not settled within {} ms ({} rounds): {} devices left without "
                      "their drivers: {}",
                      limits.timeout.count(), settle.rounds, settle.left.size(), names);
        ctx.coldplug_left = settle.left;
    }
    spdlog::info(
        "coldplug done devices={} matched={} loaded={} refused={} failed={} rounds={} "
        "settled={} ms={}",
        handled.size(), matched, loaded, refused, failed, settle.rounds,
        settle.settled ? "yes" : "no", total_ms);
    WriteRecord(ctx, records, outcomes, total_ms, settle, "");
    return Ok();
}

namespace {

// The devices present now (an enumeration of sysfs and the uevents since), with ctx.coldplug_seqnum
// set to the last event they include.
Result<std::vector<DeviceModalias>> PresentDevices(BootContext& ctx) {
    const auto start = Clock::now();
    // Enumerated ahead, beside the module stage's loads: that enumeration and the devices added
    // since (the uevent queue), unless the queue overflowed or the scan failed.
    if (std::shared_ptr<DeviceScan> scan = ctx.background.Take<DeviceScan>(kDeviceScan);
        scan && ctx.uevents) {
        DeviceScan::Found found = scan->Take();
        bool overflowed = false;
        std::vector<Uevent> events = ctx.uevents->Drain(overflowed);
        if (found.seqnum && found.devices && !overflowed) {
            const std::size_t ahead = found.devices->size();
            auto devices = DevicesSince(std::move(*found.devices), events, *found.seqnum);
            ctx.coldplug_seqnum = *found.seqnum;
            for (const auto& e : events) {
                ctx.coldplug_seqnum = std::max(ctx.coldplug_seqnum, e.seqnum);
            }
            spdlog::info("coldplug: {} devices with a modalias, enumerated ahead in {} ms, {} "
                         "added since",
                         devices.size(), found.took.count(), devices.size() - ahead);
            return devices;
        }
        spdlog::info("coldplug: the enumeration made ahead is not usable ({}): enumerating again",
                     overflowed ? "the uevent queue overflowed"
                     : !found.seqnum ? found.seqnum.error().message()
                                     : found.devices.error().message());
    }
    // Every device whose uevent is numbered up to this is in the enumeration below; the settle
    // loop takes the later ones.
    if (auto seqnum = ReadUeventSeqnum()) {
        ctx.coldplug_seqnum = *seqnum;
    } else {
        spdlog::warn("coldplug: {}", seqnum.error().message());
    }
    auto devices = EnumerateModaliases();
    if (!devices) return devices.error().Context("enumerate devices: ");
    spdlog::info("coldplug: {} devices with a modalias, enumerated in {} ms", devices->size(),
                 std::chrono::duration_cast<milliseconds>(Clock::now() - start).count());
    return devices;
}

}  // namespace

Result<void> RunColdplug(BootContext& ctx) {
    auto devices = PresentDevices(ctx);
    if (!devices) return devices.error();
    if (ctx.uevents == nullptr) {
        spdlog::warn("coldplug: no uevent socket: devices the loads add are not waited for");
        return Coldplug(ctx, *devices);
    }
    UeventDeviceEvents events(*ctx.uevents, ctx.coldplug_seqnum, ctx.paths.Under("/sys"));
    Result<void> done = Coldplug(ctx, *devices, &events);
    // Every device of an event up to here has been through coldplug (or is in
    // ctx.coldplug_left); PID 1's hot-add takes the later ones.
    ctx.coldplug_seqnum = std::max(ctx.coldplug_seqnum, events.last_seqnum());
    return done;
}

}  // namespace peinit
