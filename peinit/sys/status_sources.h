#pragma once

// Where `peinitctl` gets its facts: the running kernel through the Kernel seam, the
// kernel log (/dev/kmsg, for who set a runtime lock) and peinit's boot record under
// ROOT/run/peinit. Nothing here needs privilege except RunRuntimeLock, which is the runtime API.

#include <filesystem>
#include <iosfwd>

#include "peinit/core/status.h"
#include "peinit/sys/kernel.h"

namespace peinit {

// Reads the kernel's facts. With root "/" they come from `kernel` (module_lockdown QUERY,
// /proc/sys, /sys) and /dev/kmsg; with another root (tests, an offline tree) from the files
// ROOT/proc/sys/..., ROOT/sys/... and ROOT/dev/kmsg (a text file in kmsg's record format), and
// the syscall is not asked.
KernelFacts ReadKernelFacts(Kernel& kernel, const std::filesystem::path& root);

// The whole kernel log in /dev/kmsg's record format, one record per line (continuation lines
// start with ' '): the records still in the ring, or the text of a regular file.
Result<std::string> ReadKmsg(const std::filesystem::path& kmsg);

// The module_lockdown lines of a kernel log in /dev/kmsg's record format
// ("PRIO,SEQ,USEC,FLAGS;MESSAGE"), oldest first. nullopt when it cannot be opened (dmesg_restrict,
// no such file); `error` then says why.
std::optional<std::vector<LockLogEvent>> ReadLockLog(const std::filesystem::path& kmsg,
                                                     std::string& error);

// ROOT/run/peinit/{policy,lockdown,modules}.json, and boot.json when the emergency path left one.
StatusInputs ReadStatusInputs(Kernel& kernel, const std::filesystem::path& root);

// `peinitctl lock [--fallback]`: module_lockdown(LOCK, runtime-syscall) and a read-back. Without
// SeTcb (EPERM) prints "lock refused" and changes nothing; on an unpatched kernel (ENOSYS)
// explains the upstream fallback (kernel.modules_disabled=1 and an empty kernel.modprobe) and
// applies it only with `fallback`. Returns the exit code: 0 locked, 1 not locked.
int RunRuntimeLock(Kernel& kernel, bool fallback, std::ostream& out, std::ostream& err);

}  // namespace peinit
