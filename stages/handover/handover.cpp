#include "stages/handover/handover.h"

#include <linux/module_lockdown.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <filesystem>
#include <sstream>

#include "peinit/core/contain.h"
#include "peinit/record/policy.h"
#include "peinit/core/sealed_tree.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/kernel.h"
#include "peinit/sys/record.h"
#include "stages/autoload/autoload.h"
#include "stages/stage.h"

namespace peinit {

namespace {

namespace fs = std::filesystem;

constexpr const char* kModprobeSysctl = "kernel/modprobe";

Result<void> Copy(const fs::path& from, const fs::path& to, mode_t mode) {
    std::error_code ec;
    fs::create_directories(to.parent_path(), ec);
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    if (ec) return Err("copy " + from.string() + " to " + to.string() + ": " + ec.message());
    if (::chmod(to.c_str(), mode) != 0) return ErrnoErr("chmod " + to.string());
    return Ok();
}

// kernel.modprobe = `helper`, read back.
Result<void> SetHelper(BootContext& ctx, const std::string& helper) {
    PEINIT_TRY(ctx.kernel.WriteSysctl(kModprobeSysctl, helper.empty() ? "\n" : helper));
    auto back = PEINIT_TRY(ctx.kernel.ReadSysctl(kModprobeSysctl));
    if (back != helper) {
        return Err("read back: kernel.modprobe is \"" + back + "\", expected \"" + helper + "\"");
    }
    return Ok();
}

// What the real root's kernel.modprobe is to be.
Result<std::string> HelperForRealRoot(BootContext& ctx) {
    const std::string installed = HelperPathFor(ctx.policy);
    const bool hand_over = !ctx.lock.locked && installed == kPeinitModprobePath;
    // The root stage's thread copies peinitctl while the modules load (CopyPeinitctl); the
    // handoff waits for it. Only a convenience.
    if (!ctx.background.Running(kRootPreparation)) {
        if (auto tools = CopyPeinitctl(ctx.paths); !tools) {
            spdlog::error("handover: {}, ignoring", tools.error().message());
        }
    }
    if (ctx.lock.locked) {
        spdlog::info("handover: module loading is locked: the real root gets no helper");
        return std::string();
    }
    if (installed.empty()) {
        spdlog::info("handover: AutoLoadPolicy=disabled: the real root gets no helper");
        return std::string();
    }
    if (!hand_over) {
        // The registry's own helper path: the real root is expected to provide it.
        spdlog::info("handover: kernel.modprobe stays \"{}\" (Machine\\System\\Kernel\\Modprobe)",
                     installed);
        return installed;
    }
    // The helper, its libraries, policy, keys, packages and module tree are on the sealed tree
    // since the autoload stage (/run moves into the real root with it): nothing to copy.
    if (ctx.sealed_root.empty()) {
        return Err("cannot hand the helper over: the sealed tree " + std::string(kSealedRoot) +
                   " was not built");
    }
    PolicyRecord record{ctx.policy, ctx.hive.state, ctx.hive.path, {}, kSealedRoot};
    for (const auto& e : ctx.hive.errors) record.hive_errors.push_back(e.ToString());
    if (auto w = WriteFileAtomically(ctx.paths.Under(kPolicyRecordPath).string(), record.ToJson());
        !w) {
        return w.error().Context("cannot record the handed-over tree: ");
    }
    return std::string(kPeinitModprobePath);
}

PolicySource HelperSource(const EffectivePolicy& p) {
    return p.modprobe.value ? p.modprobe.source : PolicySource::kDefault;
}

}  // namespace

Result<void> CopyPeinitctl(const BootPaths& paths) {
    std::error_code ec;
    if (fs::path ctl = paths.Under("/usr/bin/peinitctl"); fs::exists(ctl, ec)) {
        PEINIT_TRY(Copy(ctl, paths.Under("/run/peinit/bin/peinitctl"), 0755));
    }
    return Ok();
}

std::string BlacklistExport(const EffectivePolicy& policy) {
    std::ostringstream out;
    out << "# Written by peinit (PID 1) from the effective policy (/run/peinit/policy.json): the\n"
           "# registry's Machine\\System\\Modules\\Blacklist and modprobe.blacklist=. `blacklist`\n"
           "# stops alias lookups (udev, request_module), `install ... /bin/false` an explicit\n"
           "# `modprobe NAME`. A direct finit_module(2) (insmod) is not covered.\n";
    for (const auto& b : policy.blacklist) {
        out << "blacklist " << b.module << "\ninstall " << b.module << " /bin/false\n";
    }
    return out.str();
}

Result<void> RunHandover(BootContext& ctx) {
    auto exported = Contain("", [&]() -> Result<void> {
        const fs::path file = ctx.paths.Under(kBlacklistExportPath);
        std::error_code ec;
        fs::create_directories(file.parent_path(), ec);
        return WriteFileAtomically(file.string(), BlacklistExport(ctx.policy));
    });
    if (!exported) {
        spdlog::error("handover: cannot export the blacklist: {}", exported.error().message());
    } else {
        spdlog::info("handover: blacklist exported to {} ({} modules)", kBlacklistExportPath,
                     ctx.policy.blacklist.size());
    }
    if (!ctx.cmdline.root) return Ok();  // peinit stays PID 1: its helper stays where it is

    // Each step is contained (peinit/core/contain.h): whatever fails or throws, kernel.modprobe
    // ends up the checked helper or empty, and sealed, and the failure is reported.
    std::string helper, error;
    auto note = [&](const Error& e) { error += (error.empty() ? "" : "; ") + e.message(); };
    auto empty_helper = [&] {
        helper.clear();
        if (auto reset = Contain("handover: emptying kernel.modprobe",
                                 [&] { return SetHelper(ctx, ""); });
            !reset) {
            note(reset.error());
        }
    };
    if (auto chosen = Contain("handover", [&] { return HelperForRealRoot(ctx); })) {
        helper = *chosen;
    } else {
        note(chosen.error());
    }
    if (auto set = Contain("handover: kernel.modprobe", [&] { return SetHelper(ctx, helper); });
        !set) {
        note(set.error());
        empty_helper();  // fail closed: no helper rather than a wrong one
    }
    // the real root's helper is final: seal it (an emptied path too: fail closed). Under
    // AutoLoadPolicy=disabled the autoload stage has closed the kernel's gate already.
    std::string gate = "autoload-disabled";
    if (ctx.policy.autoload.value != AutoLoadPolicy::kDisabled) {
        auto seal = [&] {
            return Contain("handover: seal", [&] {
                return ApplyAutoloadGate(ctx.kernel, MODULE_LOCKDOWN_SEAL_MODPROBE,
                                         MODULE_LOCKDOWN_QUERY_MODPROBE, GateTrigger(ctx.policy));
            });
        };
        auto sealed = seal();
        if (!sealed) {
            // A helper path the real root could rewrite must not name a helper: empty it, then
            // try to seal the empty path once more.
            note(sealed.error());
            empty_helper();
            sealed = seal();
        }
        if (!sealed) {
            gate = "";
        } else {
            gate = *sealed ? "modprobe-sealed" : "none";
            if (!*sealed) {
                spdlog::warn("handover: the kernel cannot seal kernel.modprobe: AutoLoadPolicy={} "
                             "is enforced only by the helper path",
                             ToString(ctx.policy.autoload.value));
            }
        }
    }
    try {
        WriteAutoloadRecord(ctx, helper, HelperSource(ctx.policy), helper, error, gate);
    } catch (...) {
        note(Error(UnexpectedException("handover: autoload record")));
    }
    if (!error.empty()) {
        return Err(error + ": demand loads in the real root fail (kernel.modprobe is empty)");
    }
    if (!helper.empty()) {
        spdlog::info("handover: kernel.modprobe={} enforces AutoLoadPolicy={} in the real root",
                     helper, ToString(ctx.policy.autoload.value));
    }
    return Ok();
}

}  // namespace peinit
