#pragma once

// The running kernel's release, as `uname -r` prints it (the directory name under /lib/modules
// and the release signed packages are built for).

#include <string>

#include "peinit/core/result.h"

namespace peinit {

// uname(2)'s release field, e.g. "6.1.0-peinit".
Result<std::string> RunningKernelRelease();

}  // namespace peinit
