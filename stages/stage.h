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

// early-mounts, config, autoload, root, modules, coldplug, lockdown, handover, handoff, in that
// order.
std::span<const Stage> BootStages();

// Runs `stages` in order. Each stage logs a machine-readable start and end marker:
//   stage NAME start
//   stage NAME done ok ms=12            (or: done failed ms=12 error="...")
// A failed fatal stage stops the run and its error (prefixed with the stage name) is returned,
// and its name is left in ctx.failed_stage; a failed degrade stage is logged and the run goes
// on. A stage that throws fails with "unexpected exception: WHAT" by the same rules.
Result<void> RunStages(std::span<const Stage> stages, BootContext& ctx);

}  // namespace peinit
