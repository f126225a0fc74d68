#pragma once

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

// Reads the kernel command line, the baked registry hive and the unit files into the context,
// and computes the effective policy (hive tightened by the command line, R-02).
// Guarantees to later stages: ctx.cmdline, ctx.hive, ctx.policy and ctx.units are set; a
// malformed or untrusted hive has already been replaced by the hardened fallback and logged
// loudly. Fails (fatal) when any unit file is invalid: nothing from a broken unit set is
// half-applied.
Result<void> RunConfig(BootContext& ctx);

}  // namespace peinit
