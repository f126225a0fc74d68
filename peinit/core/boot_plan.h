#pragma once

// The boot-time module plan as people see it: the plan input PID 1 builds from the units, the
// hive and the kernel command line, and the three renderings of a plan (detailed text, JSON,
// and one line per load like `modprobe --show-depends`). Shared by `peinit plan` (a module
// tree) and `peinit-image plan` (an image definition), so both show the same plan the same way.

#include <string>

#include "peinit/core/cmdline.h"
#include "peinit/core/hive.h"
#include "peinit/core/plan.h"
#include "peinit/core/units.h"

namespace peinit {

// What the module stage requests: every unit's modules (in unit order, origin "unit FILE"),
// then modules_load=; the blacklist of the hive tightened by the command line; the
// command line's mod.param= options.
PlanInput BootPlanInput(const UnitSet& units, const Hive& hive, const Cmdline& cmd);

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
