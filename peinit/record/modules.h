#pragma once

// The module rows every module-loading record shares, and /run/peinit/modules.json, the module
// stage's record: one type each, written by PID 1 and read by `peinitctl` (through the
// status model, peinit/core/status.h), the benchmark and the tests (record.h says how versions
// are handled).

#include <toml++/toml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/plan.h"
#include "peinit/core/result.h"
#include "peinit/record/record.h"

namespace peinit {

std::optional<ModuleOutcome::Status> ParseModuleStatus(std::string_view text);
// "unit", "cmdline", "coldplug", "demand", "other".
std::string_view ToString(RequestOrigin::Kind kind);
std::optional<RequestOrigin::Kind> ParseOriginKind(std::string_view text);

// One module attempt as the records have it: the same row in modules.json, coldplug.json and
// hotplug.json.
struct ModuleRow {
    std::string name;
    ModuleOutcome::Status status = ModuleOutcome::Status::kSkipped;
    std::string unit;
    // Every chain that wanted it, for people ("unit storage -> ext4"); `origins` says who, typed.
    std::vector<std::string> requested_by;
    std::vector<RequestOrigin> origins;
    int64_t error = 0;       // errno of a failed load (0: the failure was not the kernel's)
    std::string errno_name;  // "EKEYREJECTED" ("" when error is 0)
    std::string reason;
    bool refused = false;  // not attempted because the policy refused it
    std::string package;
    int64_t start_us = 0;
    int64_t duration_us = 0;
    // Modules that had to be live before it started, and when the last of them was done
    // (-1: it waited for none).
    std::vector<std::string> waits_for;
    int64_t ready_us = -1;

    static ModuleRow From(const ModuleOutcome& outcome);
    std::string StatusName() const { return std::string(ToString(status)); }
    bool Succeeded() const;
    bool IsProblem() const;  // failed or missing
    // The device a coldplug or hot-add attempt was for ("" when none).
    std::string Device() const;
};

toml::table ToToml(const ModuleRow& row);
void ReadModuleRow(RecordFields& fields, ModuleRow& row);

struct ModulesRecord {
    static constexpr int kVersion = 1;
    static constexpr const char* kPath = "/run/peinit/modules.json";

    struct Signing {
        std::string policy, source, sig_enforce, error;
        bool applied = true;
    };
    struct Summary {
        int ok = 0, failed = 0, skipped = 0, blacklisted = 0, no_device = 0;
    };
    // Where the stage's time went (ms; the prefetch ones -1 when the packages were not read
    // ahead).
    struct Phases {
        int64_t packages_ms = 0, plan_ms = 0, hash_ms = 0, first_load_ms = 0, loads_ms = 0;
        int64_t prefetch_load_ms = -1, prefetch_digests_ms = -1;
    };
    struct Package {
        std::string file, name, version, signer, reason;
        bool verified = false;
        std::vector<std::string> modules;
        int64_t hashed = 0;
    };

    int version = kVersion;
    std::string wall_time;
    int64_t boot_offset_ms = 0;
    std::string kernel_release;
    int workers = 0;
    std::string workers_source;
    int threads = 0;
    int64_t total_ms = 0;
    Signing signing;
    Summary summary;
    Phases phases;
    std::vector<Package> packages;
    std::vector<ModuleRow> modules;
    std::vector<std::string> plan_errors;
    std::vector<std::string> warnings;
    std::string error;

    std::string ToJson() const;
    static Result<ModulesRecord> FromJson(std::string_view text, const std::string& file);
};

}  // namespace peinit
