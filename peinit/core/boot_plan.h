#pragma once

// The boot-time module plan as people see it: the one collector of the plan input (what PID 1's
// module stage requests from the units, the effective policy and the kernel command line), and
// the three renderings of a plan (detailed text, JSON, and one line per load like
// `modprobe --show-depends`). The module stage, `peinit plan` (a module tree) and `peinit-image
// plan/build` (an image definition) all collect with CollectBootPlanInput, so the same tree
// gives the same plan input, origins included, and every tool shows the plan the same way.

#include <string>
#include <vector>

#include "peinit/core/cmdline.h"
#include "peinit/core/hive.h"
#include "peinit/core/plan.h"
#include "peinit/core/units.h"

namespace peinit {

// A plan input with the policy's blacklist (the hive's, tightened by the command line, R-12; each
// entry with its source) and the command line's `mod.param=` options, and no requests: the base
// of the boot's input and of every demand load's.
PlanInput PolicyPlanInput(const EffectivePolicy& policy, const Cmdline& cmd);

// What the module stage requests, and which unit asked for each request.
struct BootPlanInput {
    PlanInput input;
    // Per request: the index of its unit in UnitSet::units (load order), -1 for modules_load=.
    std::vector<int> unit_of;
    // Per request: its unit loads it only if the hardware is present.
    std::vector<bool> if_hardware_present;
};

// The one collector: PolicyPlanInput, then every unit's modules in unit load order (origin
// RequestOrigin::Unit(unit name, the file stem: "unit net"), the unit's options and
// `optional`), then modules_load= (origin RequestOrigin::Cmdline()).
BootPlanInput CollectBootPlanInput(const UnitSet& units, const EffectivePolicy& policy,
                                   const Cmdline& cmd);

struct PlanView {
    std::string title;      // "peinit plan", "peinit-image plan"
    std::string root;       // what was planned, as the user named it
    std::string kver;       // the kernel release
    std::string tree_root;  // the directory holding lib/modules: paths are shown relative to it
};

// Header, counts, then every module (status, path, dependencies, options, waits for, wanted
// by), then warnings (the db's, and what the deny lists keep out) and errors.
std::string RenderPlanText(const Plan& plan, const PlanView& view);
// One object (peinit/core/json.h formatting): "version" (kPlanJsonVersion, bumped when a key
// is removed or changes type), "root", "kver", "ok", "modules" (in load order), "warnings",
// "errors".
inline constexpr int kPlanJsonVersion = 1;
std::string RenderPlanJson(const Plan& plan, const PlanView& view);
// One line per entry in load order: "insmod /lib/modules/KVER/.../x.ko OPTIONS", "builtin x",
// and "# blacklisted x: SOURCE" (missing, skipped) for what does not load; then "# warning: "
// and "# error: " lines.
std::string RenderPlanCompact(const Plan& plan, const PlanView& view);

}  // namespace peinit
