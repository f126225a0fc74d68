#pragma once

// Running helper programs (depmod, the kernel scripts, QEMU) without a shell.

#include <string>
#include <vector>

#include "peinit/core/result.h"

namespace peinit::image {

struct CommandResult {
    int status = 0;      // exit status, or 128+signal
    std::string output;  // captured stdout (stderr too when merged)
};

// Runs argv[0] (searched in PATH, then /usr/sbin and /sbin) and captures its stdout; stderr is
// captured too when `merge_stderr`, else inherited. Fails only when it cannot be started.
Result<CommandResult> RunCapture(const std::vector<std::string>& argv, bool merge_stderr);

// Runs argv with inherited stdio; kills it (SIGTERM, then SIGKILL after 5 s) when
// `timeout_seconds` > 0 passes, which returns status 124 like timeout(1).
Result<int> RunInherit(const std::vector<std::string>& argv, int timeout_seconds);

// Finds an executable in PATH, /usr/sbin and /sbin; empty when absent.
std::string FindProgram(const std::string& name);

}  // namespace peinit::image
