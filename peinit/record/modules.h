#pragma once

// The module rows every module-loading record shares, and /run/peinit/modules.json, the module
// stage's record: one type each, written by PID 1 and read by `peinitctl` (through the
// status model, peinit/core/status.h), the benchmark and the tests (record.h says how versions
// are handled).

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
    template <typename F>
    void Members(F& f) {
        f("name", name)
            .Enum("status", status, ParseModuleStatus)("unit", unit)("requested_by", requested_by)(
                "origins", origins)("error", error)("errno", errno_name)("reason", reason)(
                "refused", refused)("package", package)("start_us", start_us)(
                "duration_us", duration_us)("waits_for", waits_for)("ready_us", ready_us);
    }
    std::string StatusName() const { return std::string(ToString(status)); }
    bool Succeeded() const;
    bool IsProblem() const;  // failed or missing
    // The device a coldplug or hot-add attempt was for ("" when none).
    std::string Device() const;
};

template <typename F>
void RecordMembers(F& f, RequestOrigin& o) {
    f.Enum("kind", o.kind, ParseOriginKind)("name", o.name);
}

struct ModulesRecord {
    static constexpr int kVersion = 1;
    static constexpr const char* kPath = "/run/peinit/modules.json";

    struct Signing {
        std::string policy, source, sig_enforce, error;
        bool applied = true;
        template <typename F>
        void Members(F& f) {
            f("policy", policy)("source", source)("sig_enforce", sig_enforce)("applied", applied)(
                "error", error);
        }
    };
    struct Summary {
        int ok = 0, failed = 0, skipped = 0, blacklisted = 0, no_device = 0;
        template <typename F>
        void Members(F& f) {
            f("ok", ok)("failed", failed)("skipped", skipped)("blacklisted", blacklisted)(
                "no_device", no_device);
        }
    };
    // Where the stage's time went (ms; the prefetch ones -1 when the packages were not read
    // ahead).
    struct Phases {
        int64_t packages_ms = 0, plan_ms = 0, hash_ms = 0, first_load_ms = 0, loads_ms = 0;
        int64_t prefetch_load_ms = -1;
        template <typename F>
        void Members(F& f) {
            f("packages_ms", packages_ms)("plan_ms", plan_ms)("hash_ms", hash_ms)(
                "first_load_ms", first_load_ms)("loads_ms", loads_ms)("prefetch_load_ms",
                                                                      prefetch_load_ms);
        }
    };
    struct Package {
        std::string file, name, version, signer, reason;
        bool verified = false;
        std::vector<std::string> modules;
        int64_t hashed = 0;
        // The modules handed out for loading before the package was rejected (or all of them):
        // each one's bytes matched the signed manifest (PACKAGE.md, streaming).
        std::vector<std::string> released;
        // Mapped in place from a read-only mount, not copied (PACKAGE.md).
        bool in_place = false;
        // Bytes hashed, repeats included (two threads hashing one member at once).
        int64_t hashed_bytes = 0;
        template <typename F>
        void Members(F& f) {
            f("file", file)("verified", verified)("name", name)("version", version)(
                "signer", signer)("reason", reason)("modules", modules)("hashed", hashed)(
                "released", released)("in_place", in_place)("hashed_bytes", hashed_bytes);
        }
    };

    int version = kVersion;
    std::string wall_time;
    int64_t boot_offset_ms = 0;
    std::string kernel_release;
    // Where the plan came from: "stored" (the image's signed stored plan, checked), "boot: WHY"
    // (planned at boot with libkmod, and why the stored plan was not used), "none".
    std::string plan_source;
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

    template <typename F>
    void Members(F& f) {
        f("version", version)("wall_time", wall_time)("boot_offset_ms", boot_offset_ms)(
            "kernel_release", kernel_release)("plan_source", plan_source)("workers", workers)(
            "workers_source", workers_source)("threads", threads)("total_ms", total_ms)(
            "signing", signing)("summary", summary)("phases", phases)("packages", packages)(
            "modules", modules)("plan_errors", plan_errors)("warnings", warnings)("error", error);
    }
    std::string ToJson() const { return WriteRecordJson(*this); }
    static Result<ModulesRecord> FromJson(std::string_view text, const std::string& file) {
        return ReadRecord<ModulesRecord>(text, file, kVersion);
    }
};

}  // namespace peinit
