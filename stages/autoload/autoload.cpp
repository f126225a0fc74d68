#include "stages/autoload/autoload.h"

#include <linux/module_lockdown.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "peinit/core/contain.h"
#include "peinit/core/sealed_tree.h"
#include "peinit/sys/kernel.h"
#include "peinit/record/stages.h"
#include "peinit/sys/record.h"
#include "stages/autoload/sealed_tree.h"

namespace peinit {

namespace {

constexpr const char* kModprobeSysctl = "kernel/modprobe";

}  // namespace

void WriteAutoloadRecord(const BootContext& ctx, const std::string& helper,
                         PolicySource helper_source, const std::string& read_back,
                         const std::string& error, const std::string& gate) {
    AutoloadRecord record;
    record.policy = std::string(ToString(ctx.policy.autoload.value));
    record.source = std::string(ToString(ctx.policy.autoload.source));
    record.helper = helper;
    record.helper_source = std::string(ToString(helper_source));
    record.read_back = read_back;
    record.allowed = ctx.policy.autoload_allowed;
    record.error = error;
    record.gate = gate;
    if (auto r = WriteFileAtomically(ctx.paths.Under(AutoloadRecord::kPath).string(),
                                     record.ToJson());
        !r) {
        spdlog::error("autoload: cannot write the boot record: {}", r.error().message());
    }
}

Result<bool> ApplyAutoloadGate(Kernel& kernel, unsigned int op, unsigned int query_op,
                               unsigned int trigger) {
    const char* name = op == MODULE_LOCKDOWN_DISABLE_AUTOLOAD ? "DISABLE_AUTOLOAD" : "SEAL_MODPROBE";
    auto set = kernel.ModuleLockdown(op, trigger);
    if (!set) {
        if (set.error().code() == ENOSYS || set.error().code() == EINVAL) return false;
        return set.error().Context(std::string("module_lockdown(") + name + "): ");
    }
    auto back = kernel.ModuleLockdown(query_op, 0);
    if (!back) return back.error().Context(std::string("read back ") + name + ": ");
    if (*back != 1) {
        return Err(std::string("read back: module_lockdown(") + name + ") returned 0 but the " +
                   "kernel reports the gate unset");
    }
    return true;
}

unsigned int GateTrigger(const EffectivePolicy& policy) {
    return policy.autoload.source == PolicySource::kHive ? MODULE_LOCKDOWN_TRIGGER_REGISTRY
                                                         : MODULE_LOCKDOWN_TRIGGER_BOOT;
}

std::string HelperPathFor(const EffectivePolicy& policy) {
    if (policy.autoload.value == AutoLoadPolicy::kDisabled) return "";
    if (!policy.modprobe.value || *policy.modprobe.value == kLegacyPeinitModprobePath) {
        return std::string(kPeinitModprobePath);
    }
    return *policy.modprobe.value;
}

Result<void> RunAutoload(BootContext& ctx) {
    std::string helper = HelperPathFor(ctx.policy);
    const PolicySource helper_source = ctx.policy.autoload.value == AutoLoadPolicy::kDisabled
                                           ? ctx.policy.autoload.source
                                       : ctx.policy.modprobe.value ? ctx.policy.modprobe.source
                                                                   : PolicySource::kDefault;
    // The sealed tree: the helper's program and inputs, and what PID 1's hot-add loads from.
    // Not needed when nothing is ever loaded on demand.
    std::string tree_error;
    if (ctx.policy.autoload.value != AutoLoadPolicy::kDisabled) {
        auto built = Contain("autoload: sealed tree", [&] { return BuildSealedTree(ctx); });
        if (!built) {
            tree_error = built.error().message();
            spdlog::error("autoload: {}: demand loads fail closed (kernel.modprobe is empty, "
                          "no hot-add)",
                          tree_error);
            if (helper == kPeinitModprobePath) helper.clear();
        } else {
            spdlog::info("autoload: sealed tree {} read-only", kSealedRoot);
        }
    }

    std::string read_back;
    auto fail = [&](const Error& error) -> Result<void> {
        WriteAutoloadRecord(ctx, helper, helper_source, read_back, error.message(), "");
        return error;
    };
    // "\n" empties the string (proc_dostring stops at the newline).
    if (auto w = ctx.kernel.WriteSysctl(kModprobeSysctl, helper.empty() ? "\n" : helper); !w) {
        return fail(w.error().Context("write kernel.modprobe: "));
    }
    auto r = ctx.kernel.ReadSysctl(kModprobeSysctl);
    if (!r) return fail(r.error().Context("read back kernel.modprobe: "));
    read_back = *r;
    if (read_back != helper) {
        return fail(Error("read back: kernel.modprobe is \"" + read_back + "\", expected \"" +
                          helper + "\""));
    }

    // the kernel's one-way gates.
    const bool disabled = ctx.policy.autoload.value == AutoLoadPolicy::kDisabled;
    std::string gate;
    if (disabled || !ctx.cmdline.root) {
        auto applied = disabled ? ApplyAutoloadGate(ctx.kernel, MODULE_LOCKDOWN_DISABLE_AUTOLOAD,
                                                    MODULE_LOCKDOWN_QUERY_AUTOLOAD,
                                                    GateTrigger(ctx.policy))
                                : ApplyAutoloadGate(ctx.kernel, MODULE_LOCKDOWN_SEAL_MODPROBE,
                                                    MODULE_LOCKDOWN_QUERY_MODPROBE,
                                                    GateTrigger(ctx.policy));
        if (!applied) return fail(applied.error());
        gate = !*applied ? "none" : disabled ? "autoload-disabled" : "modprobe-sealed";
        if (!*applied) {
            spdlog::warn("autoload: the kernel has no {} gate (module_lockdown(2) without it): "
                         "AutoLoadPolicy={} is enforced only by the helper path (kernel.modprobe)",
                         disabled ? "autoload" : "kernel.modprobe seal",
                         ToString(ctx.policy.autoload.value));
        }
    } else {
        gate = "handover";  // the real root's helper is set, then sealed, by the handover stage
    }
    WriteAutoloadRecord(ctx, helper, helper_source, read_back, tree_error, gate);
    spdlog::info("autoload policy={}({}) helper=\"{}\"({}) allowed={} gate={}",
                 ToString(ctx.policy.autoload.value), ToString(ctx.policy.autoload.source), helper,
                 ToString(helper_source), ctx.policy.autoload_allowed.size(), gate);
    return Ok();
}

}  // namespace peinit
