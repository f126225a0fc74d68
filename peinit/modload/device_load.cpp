#include "peinit/modload/device_load.h"

#include <spdlog/spdlog.h>

#include "peinit/modload/session.h"

namespace peinit {

DeviceLoad LoadDeviceDrivers(ModloadSession& session, const DeviceModalias& dev,
                             const RequestOrigin& origin, std::set<std::string>& attempted,
                             std::string_view who) {
    using Status = ModuleOutcome::Status;
    DeviceLoad out;
    auto resolved = session.Resolve(dev.modalias);
    if (!resolved) {
        ++out.failed;
        out.result = "failed";
        out.detail = resolved.error().message();
        spdlog::error("{}: {} ({}): {}", who, dev.syspath, dev.modalias, out.detail);
        return out;
    }
    out.modules = *resolved;
    if (out.modules.empty()) {
        spdlog::debug("{}: no driver for {} ({})", who, dev.syspath, dev.modalias);
        out.result = "no-driver";
        out.detail = "no module matches the MODALIAS";
        return out;
    }
    std::vector<std::string> todo;
    for (const auto& m : out.modules) {
        if (!attempted.insert(m).second) continue;
        if (session.IsLive(m)) {
            spdlog::debug("{}: {} for {} is already loaded", who, m, dev.syspath);
            continue;
        }
        todo.push_back(m);
    }
    if (todo.empty()) {
        out.result = "present";
        return out;
    }
    DemandLoadReport report = session.DemandResolved(dev.modalias, todo, origin);
    if (!report.error.empty()) {
        ++out.failed;
        out.result = "failed";
        out.detail = report.error;
        spdlog::error("{}: {} ({}): {}", who, dev.syspath, dev.modalias, report.error);
        return out;
    }
    std::string refusal, failure;
    for (const auto& r : report.refused) {
        ++out.refused;
        spdlog::warn("{}: refused {} for {} (alias {}): {}", who, r.module, dev.syspath,
                     dev.modalias, r.reason);
        if (refusal.empty()) refusal = r.module + ": " + r.reason;
    }
    for (auto& o : report.outcomes) {
        attempted.insert(o.module);
        if (o.status == Status::kLoaded || o.status == Status::kAlreadyLoaded) {
            ++out.loaded;
            spdlog::info("{}: loaded {} for {} from {}", who, o.module, dev.syspath, o.package);
        } else if (!o.refused && o.status != Status::kBlacklisted) {
            ++out.failed;
            spdlog::error("{}: module {} {} for {}: {}", who, o.module, ToString(o.status),
                          dev.syspath, o.reason);
            if (failure.empty()) {
                failure = o.module + " " + std::string(ToString(o.status)) + ": " + o.reason;
            }
        }
        out.outcomes.push_back(std::move(o));
    }
    if (!failure.empty()) {
        out.result = "failed";
        out.detail = failure;
    } else if (!refusal.empty()) {
        out.result = "refused";
        out.detail = refusal;
    } else {
        out.result = "loaded";
    }
    return out;
}

}  // namespace peinit
