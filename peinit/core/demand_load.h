#pragma once

// Demand loads and hardware coldplug share one policy decision: whether a module
// that an alias resolved to may be loaded without anyone having listed it for the boot. Both the
// kernel's helper (`peinit-modprobe -q -- ALIAS`, run by request_module) and the coldplug stage
// call DecideDemandLoad, so the two can never disagree.
//
// Rules, in this order:
//   1. The blacklist (hive Blacklist and modprobe.blacklist=) applies in every mode.
//   2. AutoLoadPolicy=disabled refuses everything (peinit also empties kernel.modprobe, so the
//      kernel should never even run the helper).
//   3. AutoLoadPolicy=allow-list allows only modules whose resolved name is in AutoLoadAllowed.
//   4. AutoLoadPolicy=enabled allows the rest, like modprobe.
// modprobe.d denials of the module tree (blacklist, install /bin/false) and denied dependencies
// are the planner's job (peinit/core/plan.h): it applies them to demand loads too.

#include <span>
#include <string>
#include <string_view>

#include "peinit/core/hive.h"
#include "peinit/core/result.h"

namespace peinit {

struct DemandDecision {
    enum class Verdict { kAllow, kBlacklisted, kPolicyDisabled, kNotAllowListed };
    Verdict verdict = Verdict::kAllow;
    // Why: "AutoLoadPolicy is enabled", "in AutoLoadAllowed", "not in AutoLoadAllowed",
    // "AutoLoadPolicy is disabled", "blacklisted (hive Machine\System\Modules\Blacklist)".
    std::string reason;

    bool allowed() const { return verdict == Verdict::kAllow; }
};

// May `module` (a resolved module name) be loaded on demand for `alias`? No rule looks at the
// alias today; it is part of the signature so that per-alias rules can be added without touching
// the two callers.
DemandDecision DecideDemandLoad(const EffectivePolicy& policy, std::string_view alias,
                                std::string_view module);

// The kernel runs the helper as `HELPER -q -- ALIAS` (kernel/kmod.c call_modprobe). Accepted:
// any of the modprobe flags -q/--quiet and -b/--use-blacklist (the blacklist always applies), an
// optional `--`, then exactly one module name or alias (IsValidModuleRef). Anything else is an
// error naming the problem.
struct HelperArgs {
    std::string alias;
    bool quiet = false;
};
Result<HelperArgs> ParseHelperArgs(std::span<const std::string_view> args);

// The program name that makes the peinit binary act as the demand-load helper.
inline constexpr std::string_view kHelperProgramName = "peinit-modprobe";

}  // namespace peinit
