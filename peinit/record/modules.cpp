#include "peinit/record/modules.h"

namespace peinit {

namespace {

using Status = ModuleOutcome::Status;
constexpr Status kStatuses[] = {Status::kLoaded,  Status::kAlreadyLoaded, Status::kFailed,
                                Status::kSkipped, Status::kBlacklisted,   Status::kBuiltin,
                                Status::kMissing, Status::kNoDevice};
using Kind = RequestOrigin::Kind;
constexpr Kind kKinds[] = {Kind::kUnit, Kind::kCmdline, Kind::kColdplug, Kind::kDemand,
                           Kind::kOther};

}  // namespace

std::optional<ModuleOutcome::Status> ParseModuleStatus(std::string_view text) {
    return ParseByName(kStatuses, text);
}

std::string_view ToString(RequestOrigin::Kind kind) {
    switch (kind) {
        case Kind::kUnit:
            return "unit";
        case Kind::kCmdline:
            return "cmdline";
        case Kind::kColdplug:
            return "coldplug";
        case Kind::kDemand:
            return "demand";
        case Kind::kOther:
            return "other";
    }
    return "other";
}

std::optional<RequestOrigin::Kind> ParseOriginKind(std::string_view text) {
    return ParseByName(kKinds, text);
}

ModuleRow ModuleRow::From(const ModuleOutcome& o) {
    ModuleRow row;
    row.name = o.module;
    row.status = o.status;
    row.unit = o.unit;
    row.requested_by = o.requested_by;
    row.origins = o.origins;
    row.error = o.error;
    row.errno_name = o.error != 0 ? ErrnoName(o.error) : "";
    row.reason = o.reason;
    row.refused = o.refused;
    row.package = o.package;
    row.start_us = o.start.count();
    row.duration_us = o.duration.count();
    row.waits_for = o.waits_for;
    row.ready_us = o.waits_for.empty() ? -1 : static_cast<int64_t>(o.ready.count());
    return row;
}

bool ModuleRow::Succeeded() const {
    return status == Status::kLoaded || status == Status::kAlreadyLoaded ||
           status == Status::kBuiltin;
}

bool ModuleRow::IsProblem() const {
    return status == Status::kFailed || status == Status::kMissing;
}

std::string ModuleRow::Device() const {
    for (const auto& o : origins) {
        if (o.kind == Kind::kColdplug) return o.name;
    }
    return "";
}

}  // namespace peinit
