#include <spdlog/spdlog.h>

#include <chrono>
#include <exception>
#include <string>

#include "stages/autoload/autoload.h"
#include "stages/autoload/handover.h"
#include "stages/coldplug/coldplug.h"
#include "stages/config/config.h"
#include "stages/early_mounts/early_mounts.h"
#include "stages/handoff/handoff.h"
#include "stages/lockdown/lockdown.h"
#include "stages/modules/modules.h"
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

}  // namespace

Result<void> RunStages(std::span<const Stage> stages, BootContext& ctx) {
    for (const Stage& stage : stages) {
        spdlog::info("stage {} start", stage.name);
        auto start = std::chrono::steady_clock::now();
        Result<void> result = RunContained(stage, ctx);
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
        if (result) {
            spdlog::info("stage {} done ok ms={}", stage.name, ms);
            continue;
        }
        if (stage.criticality == Criticality::kDegrade) {
            spdlog::error("stage {} done failed ms={} error=\"{}\", ignoring", stage.name, ms,
                          result.error().message());
            continue;
        }
        spdlog::critical("stage {} done failed ms={} error=\"{}\"", stage.name, ms,
                         result.error().message());
        ctx.failed_stage = stage.name;
        return result.error().Context("stage " + std::string(stage.name) + ": ");
    }
    return Ok();
}

}  // namespace peinit
