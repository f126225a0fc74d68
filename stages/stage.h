#pragma once

// The boot stages and their one ordered table (s6-linux-init / Android init style: main() only
// builds the context and runs this table). Each stage's header says what it guarantees to the
// stages after it.

#include <span>
#include <string_view>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

enum class Criticality {
    kFatal,    // an error stops the boot: PID 1 takes the emergency path
    kDegrade,  // an error is logged (", ignoring") and the boot goes on
};

struct Stage {
    std::string_view name;
    Criticality criticality;
    Result<void> (*run)(BootContext&);
};

// One piece of background work (ctx.background, peinit/core/background.h): the stages around
// it, by name, and what it may touch while the stages run beside it.
struct BackgroundSpec {
    std::string_view name;        // its name in ctx.background and in the log
    std::string_view started_by;  // the stage that starts it, or kBeforeStages
    std::string_view opened_by;   // the stage after which its gate is open ("": it has none)
    std::string_view joined_by;   // the stage that waits for it and takes its result
    std::string_view touches;     // what it reads and writes while it runs, for people
};

// started_by for work PID 1 starts before the first stage.
inline constexpr std::string_view kBeforeStages = "pid1";

// The names of the boot's background work (BootBackground).
inline constexpr std::string_view kPackagePrefetch = "package-prefetch";
inline constexpr std::string_view kRootPreparation = "root-preparation";
inline constexpr std::string_view kDeviceScan = "device-scan";

// early-mounts, config, autoload, root, modules, coldplug, lockdown, handover, handoff, in that
// order.
std::span<const Stage> BootStages();

// What runs beside those stages: package-prefetch (PID 1 -> modules), root-preparation
// (root -> handoff, gate opened by modules), device-scan (modules -> coldplug).
std::span<const BackgroundSpec> BootBackground();

// `background` checked against `stages`: every stage it names is among them (or kBeforeStages
// for the start), no work is opened or joined before it is started, and the joining stage comes
// after the opening one. The boot's tables are checked by a unit test.
Result<void> CheckBackground(std::span<const Stage> stages,
                             std::span<const BackgroundSpec> background);

// Runs `stages` in order. Each stage logs a machine-readable start and end marker:
//   stage NAME start
//   stage NAME done ok ms=12            (or: done failed ms=12 error="...")
// A failed fatal stage stops the run and its error (prefixed with the stage name) is returned,
// and its name is left in ctx.failed_stage; a failed degrade stage is logged and the run goes
// on. A stage that throws fails with "unexpected exception: WHAT" by the same rules.
//
// Background work (ctx.background) is held to `background` (CheckBackground first; an invalid
// table fails the run before any stage): after the stage that opens a piece its gate is opened
// (if the stage did not), and after the stage that joins it, it is joined if the stage did not
// take it (BackgroundWork::Take). Work that is running after a stage and is in no table is
// joined at once. So nothing runs into the last stage (the handoff, which does not return when
// it switches root) but what it takes itself, and anything left at the end is joined then (no
// real init inherits a thread). A piece that failed or threw
// is logged as an error ("background NAME failed: ..., ignoring") and the boot goes on: the
// stage that takes its result falls back on doing the work itself. A fatal stage's failure
// returns at once: the emergency path joins nothing that might wait (a root that never comes).
Result<void> RunStages(std::span<const Stage> stages, BootContext& ctx,
                       std::span<const BackgroundSpec> background = {});

}  // namespace peinit
