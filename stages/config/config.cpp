#include "stages/config/config.h"

#include <spdlog/spdlog.h>

#include "peinit/record/image.h"
#include "peinit/record/policy.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/record.h"
#include "stages/measure/measure.h"

namespace peinit {

namespace {

// /run/peinit/policy.json (peinit/record/policy.h): for `peinitctl status`, and the policy
// the demand-load helper enforces.
void WritePolicyRecord(const BootContext& ctx) {
    PolicyRecord record{ctx.policy, ctx.hive.state, ctx.hive.path, {}, "/"};
    for (const auto& e : ctx.hive.errors) record.hive_errors.push_back(e.ToString());
    if (auto r = WriteFileAtomically(ctx.paths.Under(kPolicyRecordPath).string(), record.ToJson());
        !r) {
        spdlog::error("config: cannot write the boot record: {}", r.error().message());
    }
}

// The image's provenance (/etc/peinit/image.json, written by peinit-image) into the boot record,
// where `peinitctl status` shows it, in the real root too. Checked before it is copied: an
// unreadable one is reported and left out, never fatal.
void RecordImageInfo(const BootContext& ctx) {
    const std::string from = ctx.paths.Under(kImageInfoPath).string();
    auto text = ReadConfigFile(from);
    if (!text) {
        if (text.error().code() != ENOENT) {
            spdlog::error("config: image record {}: {}", from, text.error().message());
        }
        return;
    }
    auto info = ImageInfo::FromJson(text->text, kImageInfoPath);
    if (!info) {
        spdlog::error("config: {}, not recorded", info.error().message());
        return;
    }
    spdlog::info("config image: {} kernel={} modules={} key={}", info->generator,
                 info->kernel_release, info->module_mode, info->key_fingerprint.substr(0, 16));
    if (auto r = WriteFileAtomically(ctx.paths.Under(kImageRecordPath).string(), info->ToJson());
        !r) {
        spdlog::error("config: cannot write the boot record: {}", r.error().message());
    }
}

}  // namespace

Result<void> RunConfig(BootContext& ctx) {
    auto cmdline_text = ReadConfigFile(ctx.paths.CmdlineFile().string());
    if (!cmdline_text) return cmdline_text.error();
    ctx.cmdline = ParseCmdline(cmdline_text->text);
    for (const auto& d : ctx.cmdline.diagnostics) {
        spdlog::warn("kernel command line: {}, ignoring", d.ToString());
    }

    ctx.hive = LoadHive(ctx.paths.HiveFile().string());
    if (ctx.hive.state == HiveState::kFallback) {
        for (const auto& e : ctx.hive.errors) spdlog::critical("hive: {}", e.ToString());
        spdlog::critical(
            "hive {} is not usable: applying the hardened fallback (LockAfterBoot=true, "
            "AutoLoadPolicy=disabled)",
            ctx.hive.path);
    }
    ctx.policy = ComputeEffectivePolicy(ctx.hive, ctx.cmdline);
    ctx.config_loaded = true;
    WritePolicyRecord(ctx);
    RecordImageInfo(ctx);
    // The image and the effective policy are measured before any stage applies the policy.
    StartMeasurement(ctx);
    for (const auto& ignored : ctx.policy.ignored) spdlog::warn("{}", ignored);

    UnitLoad load = LoadUnitDirs({ctx.paths.UnitsDir().string()});
    for (const auto& e : load.errors) spdlog::error("{}", e.ToString());
    if (!load.errors.empty()) {
        return Err(std::to_string(load.errors.size()) +
                   " error(s) in unit files, first: " + load.errors.front().ToString());
    }
    ctx.units = std::move(load.units);

    spdlog::info(
        "config hive={} lock_after_boot={}({}) autoload={}({}) signing={}({}) units={} "
        "modules={} services={}",
        ToString(ctx.hive.state), ctx.policy.lock_after_boot.value,
        ToString(ctx.policy.lock_after_boot.source), ToString(ctx.policy.autoload.value),
        ToString(ctx.policy.autoload.source), ToString(ctx.policy.signing.value),
        ToString(ctx.policy.signing.source), ctx.units.units.size(), ctx.units.ModuleCount(),
        ctx.units.ServiceCount());
    return Ok();
}

}  // namespace peinit
