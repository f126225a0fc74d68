#include "stages/coldplug/coldplug.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "peinit/sys/kernel_release.h"
#include "peinit/sys/record.h"
#include "peinit/sys/uevent.h"
#include "peinit/modload/session.h"

namespace peinit {

namespace {

using Clock = std::chrono::steady_clock;
using Status = ModuleOutcome::Status;

struct DeviceRecord {
    const DeviceModalias* device;
    std::vector<std::string> resolved;
    std::string error;
};

void WriteRecord(const BootContext& ctx, const std::vector<DeviceRecord>& devices,
                 const std::vector<ModuleOutcome>& outcomes, int64_t total_ms,
                 const std::string& error) {
    toml::array devs;
    for (const auto& d : devices) {
        toml::array resolved;
        for (const auto& m : d.resolved) resolved.push_back(m);
        devs.push_back(toml::table{{"syspath", d.device->syspath},
                                   {"modalias", d.device->modalias},
                                   {"modules", std::move(resolved)},
                                   {"error", d.error}});
    }
    toml::table record{
        {"version", 1},
        {"policy", std::string(ToString(ctx.policy.autoload.value))},
        {"total_ms", total_ms},
        {"devices", std::move(devs)},
        {"modules", OutcomeRows(outcomes)},
        {"error", error},
    };
    if (auto r = WriteJsonAtomically(ctx.paths.Under("/run/peinit/coldplug.json").string(), record);
        !r) {
        spdlog::error("coldplug: cannot write the boot record: {}", r.error().message());
    }
}

}  // namespace

Result<void> Coldplug(BootContext& ctx, const std::vector<DeviceModalias>& devices) {
    const auto origin = Clock::now();
    auto elapsed_ms = [&] {
        return static_cast<int64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - origin).count());
    };
    std::vector<DeviceRecord> records;
    std::vector<ModuleOutcome> outcomes;
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
        WriteRecord(ctx, records, outcomes, elapsed_ms(), "no module tree");
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
        WriteRecord(ctx, records, outcomes, elapsed_ms(), e.message());
        return e;
    }

    std::set<std::string> attempted;  // each module once, whichever device wants it first
    int matched = 0, loaded = 0, refused = 0, failed = 0;
    for (const DeviceModalias& dev : devices) {
        DeviceRecord rec{&dev, {}, {}};
        auto resolved = session.Resolve(dev.modalias);
        if (!resolved) {
            rec.error = resolved.error().message();
            spdlog::warn("coldplug: {} ({}): {}, ignoring", dev.syspath, dev.modalias, rec.error);
            records.push_back(std::move(rec));
            continue;
        }
        rec.resolved = *resolved;
        if (!rec.resolved.empty()) ++matched;
        std::vector<std::string> todo;
        for (const auto& m : rec.resolved) {
            if (!attempted.insert(m).second) continue;
            if (session.IsLive(m)) {
                spdlog::debug("coldplug: {} for {} is already loaded", m, dev.syspath);
                continue;
            }
            todo.push_back(m);
        }
        records.push_back(std::move(rec));
        if (todo.empty()) continue;

        DemandLoadReport report =
            session.DemandResolved(dev.modalias, todo, RequestOrigin::Coldplug(dev.syspath));
        if (!report.error.empty()) {
            ++failed;
            spdlog::error("coldplug: {} ({}): {}", dev.syspath, dev.modalias, report.error);
            continue;
        }
        for (const auto& r : report.refused) {
            ++refused;
            spdlog::warn("coldplug: refused {} for {} (alias {}): {}", r.module, dev.syspath,
                         dev.modalias, r.reason);
        }
        for (auto& o : report.outcomes) {
            attempted.insert(o.module);
            if (o.status == Status::kLoaded || o.status == Status::kAlreadyLoaded) {
                ++loaded;
                spdlog::info("coldplug: loaded {} for {} from {}", o.module, dev.syspath,
                             o.package);
            } else if (!o.reason.starts_with("refused: ") && o.status != Status::kBlacklisted) {
                ++failed;
                spdlog::error("coldplug: module {} {} for {}: {}", o.module, ToString(o.status),
                              dev.syspath, o.reason);
            }
            outcomes.push_back(o);
            ctx.module_outcomes.push_back(std::move(o));
        }
    }
    const int64_t total_ms = elapsed_ms();
    spdlog::info("coldplug done devices={} matched={} loaded={} refused={} failed={} ms={}",
                 devices.size(), matched, loaded, refused, failed, total_ms);
    WriteRecord(ctx, records, outcomes, total_ms, "");
    return Ok();
}

Result<void> RunColdplug(BootContext& ctx) {
    const auto start = Clock::now();
    // Enumerated ahead, beside the module stage's loads: that enumeration and the devices added
    // since (the uevent queue), unless the queue overflowed or the scan failed.
    if (std::shared_ptr<DeviceScan> scan = std::move(ctx.device_scan); scan && ctx.uevents) {
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
            return Coldplug(ctx, devices);
        }
        spdlog::info("coldplug: the enumeration made ahead is not usable ({}): enumerating again",
                     overflowed ? "the uevent queue overflowed"
                     : !found.seqnum ? found.seqnum.error().message()
                                     : found.devices.error().message());
    }
    // Every device whose uevent is numbered up to this is in the enumeration below; PID 1's
    // hot-add takes the later ones (peinit/init/hotplug.h).
    if (auto seqnum = ReadUeventSeqnum()) {
        ctx.coldplug_seqnum = *seqnum;
    } else {
        spdlog::warn("coldplug: {}", seqnum.error().message());
    }
    auto devices = EnumerateModaliases();
    if (!devices) return devices.error().Context("enumerate devices: ");
    spdlog::info("coldplug: {} devices with a modalias, enumerated in {} ms", devices->size(),
                 std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)
                     .count());
    return Coldplug(ctx, *devices);
}

}  // namespace peinit
