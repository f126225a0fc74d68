#include "stages/config/config.h"

#include <spdlog/spdlog.h>

#include "peinit/sys/config_files.h"
#include "peinit/sys/record.h"

namespace peinit {

namespace {

toml::table SourcedValue(std::string_view value, PolicySource source) {
    return toml::table{{"value", std::string(value)}, {"source", std::string(ToString(source))}};
}

// /run/peinit/policy.json: the effective policy and where each value came from, for
// `peinitctl status` (the kernel is the authority for what is enforced; this says why).
void WritePolicyRecord(const BootContext& ctx) {
    const EffectivePolicy& p = ctx.policy;
    toml::array errors;
    for (const auto& e : ctx.hive.errors) errors.push_back(e.ToString());
    toml::array allowed;
    for (const auto& m : p.autoload_allowed) allowed.push_back(m);
    toml::array blacklist;
    for (const auto& b : p.blacklist) {
        blacklist.push_back(
            toml::table{{"module", b.module}, {"source", std::string(ToString(b.source))}});
    }
    toml::array ignored;
    for (const auto& i : p.ignored) ignored.push_back(i);
    toml::table record{
        {"version", 1},
        {"hive", toml::table{{"state", std::string(ToString(ctx.hive.state))},
                             {"path", ctx.hive.path},
                             {"errors", std::move(errors)}}},
        {"lock_after_boot",
         toml::table{{"value", p.lock_after_boot.value},
                     {"source", std::string(ToString(p.lock_after_boot.source))}}},
        {"autoload", SourcedValue(ToString(p.autoload.value), p.autoload.source)},
        {"autoload_allowed", std::move(allowed)},
        {"blacklist", std::move(blacklist)},
        {"signing", SourcedValue(ToString(p.signing.value), p.signing.source)},
        {"ignored", std::move(ignored)},
    };
    if (p.modprobe.value) record.insert("modprobe", *p.modprobe.value);
    if (p.workers.value) record.insert("workers", static_cast<int64_t>(*p.workers.value));
    if (auto r = WriteJsonAtomically(ctx.paths.Under("/run/peinit/policy.json").string(), record);
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
