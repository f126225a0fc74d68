#include "peinit/record/modules.h"

#include "peinit/core/json.h"
#include "peinit/record/record_toml.h"

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

bool ModuleRow::IsProblem() const { return status == Status::kFailed || status == Status::kMissing; }

std::string ModuleRow::Device() const {
    for (const auto& o : origins) {
        if (o.kind == Kind::kColdplug) return o.name;
    }
    return "";
}

toml::table ToToml(const ModuleRow& row) {
    toml::array origins;
    for (const auto& o : row.origins) {
        origins.push_back(toml::table{{"kind", std::string(ToString(o.kind))}, {"name", o.name}});
    }
    return toml::table{
        {"name", row.name},
        {"status", std::string(ToString(row.status))},
        {"unit", row.unit},
        {"requested_by", TomlStrings(row.requested_by)},
        {"origins", std::move(origins)},
        {"error", row.error},
        {"errno", row.errno_name},
        {"reason", row.reason},
        {"refused", row.refused},
        {"package", row.package},
        {"start_us", row.start_us},
        {"ready_us", row.ready_us},
        {"duration_us", row.duration_us},
        {"waits_for", TomlStrings(row.waits_for)},
    };
}

void ReadModuleRow(RecordFields& f, ModuleRow& row) {
    f.Get("name", row.name)
        .Enum("status", row.status, ParseModuleStatus)
        .Get("unit", row.unit)
        .Get("requested_by", row.requested_by)
        .Objects("origins", row.origins,
                 [](RecordFields& o, RequestOrigin& origin) {
                     o.Enum("kind", origin.kind, ParseOriginKind).Get("name", origin.name);
                 })
        .Get("error", row.error)
        .Get("errno", row.errno_name)
        .Get("reason", row.reason)
        .Get("refused", row.refused)
        .Get("package", row.package)
        .Get("start_us", row.start_us)
        .Get("duration_us", row.duration_us)
        .Get("waits_for", row.waits_for)
        .Get("ready_us", row.ready_us);
    if (row.waits_for.empty()) row.ready_us = -1;
}

std::string ModulesRecord::ToJson() const {
    toml::array pkgs;
    for (const auto& p : packages) {
        pkgs.push_back(toml::table{
            {"file", p.file},
            {"verified", p.verified},
            {"name", p.name},
            {"version", p.version},
            {"signer", p.signer},
            {"reason", p.reason},
            {"modules", TomlStrings(p.modules)},
            {"hashed", p.hashed},
        });
    }
    toml::array rows;
    for (const auto& m : modules) rows.push_back(ToToml(m));
    return FormatJson(toml::table{
        {"version", version},
        {"wall_time", wall_time},
        {"boot_offset_ms", boot_offset_ms},
        {"kernel_release", kernel_release},
        {"workers", workers},
        {"workers_source", workers_source},
        {"threads", threads},
        {"total_ms", total_ms},
        {"signing",
         toml::table{
             {"policy", signing.policy},
             {"source", signing.source},
             {"sig_enforce", signing.sig_enforce},
             {"applied", signing.applied},
             {"error", signing.error},
         }},
        {"summary",
         toml::table{
             {"ok", summary.ok},
             {"failed", summary.failed},
             {"skipped", summary.skipped},
             {"blacklisted", summary.blacklisted},
             {"no_device", summary.no_device},
         }},
        {"phases",
         toml::table{
             {"packages_ms", phases.packages_ms},
             {"plan_ms", phases.plan_ms},
             {"hash_ms", phases.hash_ms},
             {"first_load_ms", phases.first_load_ms},
             {"loads_ms", phases.loads_ms},
             {"prefetch_load_ms", phases.prefetch_load_ms},
             {"prefetch_digests_ms", phases.prefetch_digests_ms},
         }},
        {"packages", std::move(pkgs)},
        {"modules", std::move(rows)},
        {"plan_errors", TomlStrings(plan_errors)},
        {"warnings", TomlStrings(warnings)},
        {"error", error},
    });
}

Result<ModulesRecord> ModulesRecord::FromJson(std::string_view text, const std::string& file) {
    return ReadRecord<ModulesRecord>(text, file, kVersion, [](RecordFields& f, ModulesRecord& r) {
        f.Get("version", r.version)
            .Get("wall_time", r.wall_time)
            .Get("boot_offset_ms", r.boot_offset_ms)
            .Get("kernel_release", r.kernel_release)
            .Get("workers", r.workers)
            .Get("workers_source", r.workers_source)
            .Get("threads", r.threads)
            .Get("total_ms", r.total_ms)
            .Object("signing", r.signing,
                    [](RecordFields& s, Signing& v) {
                        s.Get("policy", v.policy)
                            .Get("source", v.source)
                            .Get("sig_enforce", v.sig_enforce)
                            .Get("applied", v.applied)
                            .Get("error", v.error);
                    })
            .Object("summary", r.summary,
                    [](RecordFields& s, Summary& v) {
                        s.Get("ok", v.ok)
                            .Get("failed", v.failed)
                            .Get("skipped", v.skipped)
                            .Get("blacklisted", v.blacklisted)
                            .Get("no_device", v.no_device);
                    })
            .Object("phases", r.phases,
                    [](RecordFields& s, Phases& v) {
                        s.Get("packages_ms", v.packages_ms)
                            .Get("plan_ms", v.plan_ms)
                            .Get("hash_ms", v.hash_ms)
                            .Get("first_load_ms", v.first_load_ms)
                            .Get("loads_ms", v.loads_ms)
                            .Get("prefetch_load_ms", v.prefetch_load_ms)
                            .Get("prefetch_digests_ms", v.prefetch_digests_ms);
                    })
            .Objects("packages", r.packages,
                     [](RecordFields& s, Package& v) {
                         s.Get("file", v.file)
                             .Get("verified", v.verified)
                             .Get("name", v.name)
                             .Get("version", v.version)
                             .Get("signer", v.signer)
                             .Get("reason", v.reason)
                             .Get("modules", v.modules)
                             .Get("hashed", v.hashed);
                     })
            .Objects("modules", r.modules, ReadModuleRow)
            .Get("plan_errors", r.plan_errors)
            .Get("warnings", r.warnings)
            .Get("error", r.error);
    });
}

}  // namespace peinit
