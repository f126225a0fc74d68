#include "peinit/core/demand_load.h"

#include <algorithm>

#include "peinit/core/module_policy.h"

namespace peinit {

DemandDecision DecideDemandLoad(const EffectivePolicy& policy, std::string_view /*alias*/,
                                std::string_view module) {
    using Verdict = DemandDecision::Verdict;
    const std::string name = NormalizeModuleName(module);
    for (const auto& b : policy.blacklist) {
        if (b.module != name) continue;
        return {Verdict::kBlacklisted,
                b.source == PolicySource::kCmdline
                    ? "blacklisted (kernel command line modprobe.blacklist=" + name + ")"
                    : "blacklisted (hive Machine\\System\\Modules\\Blacklist)"};
    }
    switch (policy.autoload.value) {
        case AutoLoadPolicy::kDisabled:
            return {Verdict::kPolicyDisabled, "AutoLoadPolicy is disabled"};
        case AutoLoadPolicy::kAllowList: {
            const auto& allowed = policy.autoload_allowed;
            bool listed = std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) {
                return NormalizeModuleName(a) == name;
            });
            if (!listed) return {Verdict::kNotAllowListed, "not in AutoLoadAllowed"};
            return {Verdict::kAllow, "in AutoLoadAllowed"};
        }
        case AutoLoadPolicy::kEnabled:
            break;
    }
    return {Verdict::kAllow, "AutoLoadPolicy is enabled"};
}

Result<HelperArgs> ParseHelperArgs(std::span<const std::string_view> args) {
    HelperArgs out;
    std::size_t i = 0;
    for (; i < args.size(); ++i) {
        std::string_view a = args[i];
        if (a == "--") {
            ++i;
            break;
        }
        if (a == "-q" || a == "--quiet") {
            out.quiet = true;
        } else if (a == "-b" || a == "--use-blacklist") {
            // The blacklist always applies to demand loads.
        } else if (a.starts_with("-")) {
            return Err("unsupported option \"" + std::string(a) + "\"", EINVAL);
        } else {
            break;
        }
    }
    if (i >= args.size()) return Err("no module name or alias given", EINVAL);
    if (args.size() - i > 1) {
        return Err(
            "exactly one module name or alias expected, got " + std::to_string(args.size() - i),
            EINVAL);
    }
    if (!IsValidModuleRef(args[i])) {
        return Err("not a module name or alias: \"" + std::string(args[i]) + "\"", EINVAL);
    }
    out.alias = std::string(args[i]);
    return out;
}

}  // namespace peinit
