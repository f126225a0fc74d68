#pragma once

// The demand-load helper: what the kernel runs for request_module() when kernel.modprobe
// points at peinit's helper (`/sbin/peinit-modprobe`, a link to the peinit binary; main()
// dispatches on the program name). The kernel runs it as `HELPER -q -- ALIAS`, as root, as a
// child of a kernel thread, with a fixed minimal environment and possibly without stdin,
// stdout or stderr; nothing here depends on the environment.
//
// It enforces exactly the policy PID 1 recorded in /run/peinit/policy.json
// (peinit/record/policy.h), never a recomputation from the hive: after the switch to the
// real root the hive is gone. A missing, unreadable or malformed record is AutoLoadPolicy
// `disabled` (fail closed). It resolves and loads from the record's `modload_root` ("/" in the
// initramfs, /run/peinit/modload after the handoff) through its own module-loading session
// (peinit/modload/session.h), i.e. only from verified signed packages: it reads each package
// once, checks its signature and hashes only the members it is about to load (dependencies
// included), never the whole package, since it may trust no bytes it did not hash itself.
// Refusals and failures go to
// /dev/kmsg, e.g.
//   peinit-modprobe: refused demand load of net-pf-38 (module af_alg): not in AutoLoadAllowed
// Exit status: 0 when every module the alias resolved to is live, 1 when something was refused,
// failed or nothing provides the alias, 2 for bad arguments.

#include <string>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

class Kernel;

// One line for /dev/kmsg (without the "peinit-modprobe: " prefix).
struct HelperLogLine {
    int priority;  // LOG_WARNING, LOG_ERR, LOG_INFO
    std::string text;
};

// The helper's work, with its inputs injectable for tests: `args` (argv without argv[0]),
// `paths` (root "/" in production), the kernel release and the Kernel seam. Appends what to log
// to `log`; returns the exit status.
int RunDemandLoadHelper(const std::vector<std::string>& args, const BootPaths& paths,
                        const std::string& kernel_release, Kernel& kernel,
                        std::vector<HelperLogLine>& log);

// main() for the helper: argv as the kernel passed it. Never throws.
int ModprobeHelperMain(int argc, char** argv) noexcept;

}  // namespace peinit
