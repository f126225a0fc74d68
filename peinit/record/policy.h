#pragma once

// /run/peinit/policy.json: the effective policy PID 1 computed (hive tightened by the command
// line) and where each value came from. One record, its writer and reader side by side:
//   - `peinitctl status` shows it (why the policy is what it is; the kernel says what is enforced);
//   - the demand-load helper enforces exactly it: it never recomputes the policy from the
//     hive or the command line, which may be missing or different after the handoff. A record
//     that is missing, unreadable or malformed means AutoLoadPolicy `disabled` (fail closed).
// `modload_root` (added to version 1): the tree the helper resolves and loads from ("/" in the
// initramfs; /run/peinit/modload after the switch to the real root, see
// stages/handover/handover.h).

#include <string>
#include <string_view>

#include "peinit/core/hive.h"
#include "peinit/core/result.h"

namespace peinit {

inline constexpr const char* kPolicyRecordPath = "/run/peinit/policy.json";

struct PolicyRecord {
    EffectivePolicy policy;
    HiveState hive_state = HiveState::kAbsent;
    std::string hive_path;
    std::vector<std::string> hive_errors;
    std::string modload_root = "/";

    static constexpr int kVersion = 1;
    std::string ToJson() const;
    // Errors name `file` and the field ("policy.json: autoload.value: unknown value").
    static Result<PolicyRecord> FromJson(std::string_view text, const std::string& file);
};

}  // namespace peinit
