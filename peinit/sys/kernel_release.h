#pragma once

// The running kernel's release, as `uname -r` prints it (the directory name under /lib/modules
// and the release signed packages are built for).

#include <optional>
#include <string>

#include "peinit/core/result.h"

namespace peinit {

// uname(2)'s release field, e.g. "6.1.0-peinit".
Result<std::string> RunningKernelRelease();

// Where a directory keeps its module tree, in the layouts our kernel scripts and systems use:
// kernel/build's output has it in DIR/modroot/lib/modules/KVER, everything else (a root file
// system, kernel/debian-kernel's output) in DIR/lib/modules/KVER. Both scripts write the release
// to DIR/kver.
struct ModuleTreeLayout {
    std::string root;                 // the directory holding lib/modules
    std::optional<std::string> kver;  // DIR/kver, when there is one
};
// Errors: DIR is not a directory, or DIR/kver is unreadable or empty.
Result<ModuleTreeLayout> ReadModuleTreeLayout(const std::string& dir);

}  // namespace peinit
