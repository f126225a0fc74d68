#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>
#include <optional>
#include <string>

#include "stages/autoload/autoload.h"
#include "stages/coldplug/coldplug.h"
#include "stages/config/config.h"
#include "stages/early_mounts/early_mounts.h"
#include "stages/handoff/handoff.h"
#include "stages/handover/handover.h"
#include "stages/lockdown/lockdown.h"
#include "stages/modules/modules.h"
#include "stages/root/root.h"
#include "stages/stage.h"

namespace peinit {

std::span<const Stage> BootStages() {
    static constexpr Stage kStages[] = {
        {"early-mounts", Criticality::kFatal, RunEarlyMounts},
        {"config", Criticality::kFatal, RunConfig},
        {"autoload", Criticality::kFatal, RunAutoload},
        {"root", Criticality::kDegrade, RunRoot},
        {"modules", Criticality::kDegrade, RunModules},
        {"coldplug", Criticality::kDegrade, RunColdplug},
        {"lockdown", Criticality::kFatal, RunLockdown},
        {"handover", Criticality::kDegrade, RunHandover},
        {"handoff", Criticality::kFatal, RunHandoff},
    };
    return kStages;
}

std::span<const BackgroundSpec> BootBackground() {
    static constexpr BackgroundSpec kBackground[] = {
        {kPackagePrefetch, kBeforeStages, "", "modules",
         "reads the packages (ctx.paths.PackagesDir) and the trusted keys, checks their "
         "signatures and hashes their members into a PackageSet of its own; no kernel call, no "
         "write (peinit/modload/packages.h)"},
        {kRootPreparation, "root", "modules", "handoff",
         "polls the block devices for root= (libblkid, read only); once the device is there, "
         "copies peinitctl to /run/peinit/bin (the handover's copy); after its gate, mounts the "
         "root on /newroot when every file system it tries is in the kernel (so that no module "
         "is loaded) and opens the real init to read it ahead (stages/root/root.h)"},
        {kDeviceScan, "modules", "", "coldplug",
         "reads /sys/kernel/uevent_seqnum and every device's modalias under /sys (read only), at "
         "nice 19 beside the module loads (peinit/sys/uevent.h)"},
    };
    return kBackground;
}

namespace {

// The position of the stage called `name` in `stages`, or nullopt.
std::optional<size_t> StageIndex(std::span<const Stage> stages, std::string_view name) {
    for (size_t i = 0; i < stages.size(); ++i) {
        if (stages[i].name == name) return i;
    }
    return std::nullopt;
}

const BackgroundSpec* FindSpec(std::span<const BackgroundSpec> background, std::string_view name) {
    for (const BackgroundSpec& b : background) {
        if (b.name == name) return &b;
    }
    return nullptr;
}

// Joins the work `name` if it is still pending and logs how it ended.
void JoinAndReport(BootContext& ctx, std::string_view name, std::string_view at) {
    if (!ctx.background.Running(name)) return;
    auto start = std::chrono::steady_clock::now();
    Result<void> ended = ctx.background.Join(name, at);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - start)
                  .count();
    if (ended) {
        spdlog::debug("background {} joined at {} ms={}", name, at, ms);
    } else {
        spdlog::error("background {} failed: {}, ignoring", name, ended.error().message());
    }
}

}  // namespace

Result<void> CheckBackground(std::span<const Stage> stages,
                             std::span<const BackgroundSpec> background) {
    for (const BackgroundSpec& b : background) {
        const std::string what = "background " + std::string(b.name) + ": ";
        if (FindSpec(background, b.name) != &b) return Err(what + "named twice");
        std::optional<size_t> start;
        if (b.started_by != kBeforeStages) {
            start = StageIndex(stages, b.started_by);
            if (!start)
                return Err(what + "started by \"" + std::string(b.started_by) +
                           "\", no such stage");
        }
        auto join = StageIndex(stages, b.joined_by);
        if (!join)
            return Err(what + "joined by \"" + std::string(b.joined_by) + "\", no such stage");
        if (start && *join <= *start) {
            return Err(what + "joined by " + std::string(b.joined_by) + ", not after " +
                       std::string(b.started_by) + " which starts it");
        }
        if (!b.opened_by.empty()) {
            auto open = StageIndex(stages, b.opened_by);
            if (!open)
                return Err(what + "opened by \"" + std::string(b.opened_by) + "\", no such stage");
            if ((start && *open < *start) || *open > *join) {
                return Err(what + "opened by " + std::string(b.opened_by) +
                           ", not between the stage that starts it and the one that joins it");
            }
        }
    }
    return Ok();
}

namespace {

// A stage that throws (nothing should; a bug or std::bad_alloc) fails like one that returned its
// error: a degrade stage is logged and the boot goes on, a fatal one takes the emergency path.
// PID 1 never unwinds out of the table.
Result<void> RunContained(const Stage& stage, BootContext& ctx) noexcept {
    try {
        return stage.run(ctx);
    } catch (const std::exception& e) {
        return Err(std::string("unexpected exception: ") + e.what());
    } catch (...) {
        return Err("unexpected exception");
    }
}

// After `stage`: the gates it opens are open, the work it joins is joined, and work in no table
// does not outlive the stage that started it.
void HoldBackground(BootContext& ctx, const Stage& stage,
                    std::span<const BackgroundSpec> background) {
    for (const std::string& name : ctx.background.Pending()) {
        const BackgroundSpec* spec = FindSpec(background, name);
        if (spec == nullptr) {
            spdlog::error("background {} is running after stage {} and is in no table", name,
                          stage.name);
            JoinAndReport(ctx, name, stage.name);
            continue;
        }
        if (spec->opened_by == stage.name) ctx.background.Open(name);
        if (spec->joined_by == stage.name) JoinAndReport(ctx, name, stage.name);
    }
}

}  // namespace

Result<void> RunStages(std::span<const Stage> stages, BootContext& ctx,
                       std::span<const BackgroundSpec> background) {
    PEINIT_TRY(CheckBackground(stages, background));
    for (const Stage& stage : stages) {
        spdlog::info("stage {} start", stage.name);
        auto start = std::chrono::steady_clock::now();
        Result<void> result = RunContained(stage, ctx);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
        if (result || stage.criticality == Criticality::kDegrade) {
            if (result) {
                spdlog::info("stage {} done ok ms={}", stage.name, ms);
            } else {
                spdlog::error("stage {} done failed ms={} error=\"{}\", ignoring", stage.name, ms,
                              result.error().message());
            }
            HoldBackground(ctx, stage, background);
            continue;
        }
        spdlog::critical("stage {} done failed ms={} error=\"{}\"", stage.name, ms,
                         result.error().message());
        ctx.failed_stage = stage.name;
        return result.error().Context("stage " + std::string(stage.name) + ": ");
    }
    for (const std::string& name : ctx.background.Pending()) JoinAndReport(ctx, name, "the end");
    return Ok();
}

}  // namespace peinit
