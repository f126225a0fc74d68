#pragma once

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

// Runs after every boot-time module has been attempted, whatever their outcome. When the
// effective LockAfterBoot is true it locks module loading with module_lockdown(LOCK) (trigger
// "registry" when the hive asked, "boot-orchestrator-step" otherwise) and reads the flag back;
// on a kernel without the syscall (ENOSYS) it sets kernel.modules_disabled=1 and empties
// kernel.modprobe instead. Records the outcome in ctx.lock and /run/peinit/lockdown.json.
// Guarantees: when it returns Ok and a lock was required, the kernel reports itself locked.
// A lock that was required but could not be confirmed is an error (fatal: no handoff).
// With LockAfterBoot=false nothing is locked.
Result<void> RunLockdown(BootContext& ctx);

// The lock itself, also used by the emergency path (fail closed).
Result<void> EngageLock(BootContext& ctx);

}  // namespace peinit
