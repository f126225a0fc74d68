#pragma once

// Locking module loading, and asking whether it is locked: the one implementation behind PID 1's
// lock stage, `peinitctl lock` and the hot-add path.
//
// - A patched kernel: module_lockdown(LOCK, trigger), then the read-back: QUERY must say 1, and
//   kernel.module_loading_locked, when readable, must agree.
// - An unpatched kernel (LOCK fails ENOSYS), when the caller allows it: the upstream fallback.
//   kernel.modules_disabled=1 stops explicit loads, and kernel.modprobe is emptied because the
//   kernel would still start the helper as root for demand loads; both are read back. Locking is
//   SeTcb's decision whatever the mechanism: without CAP_SYS_ADMIN the fallback is refused
//   before any write (kernel.modules_disabled itself only asks for CAP_SYS_MODULE).
//   modules_disabled leaves no audit trail of its own (the patched kernel audits LOCK itself), so
//   a user-space record is sent (type 1127, libaudit's AUDIT_USYS_CONFIG: `op=
//   module-lockdown-fallback mechanism=modules_disabled trigger=T res=success|failed`) when the
//   kernel has audit; its outcome is reported, never the lock's error.

#include <string>
#include <string_view>

#include "peinit/core/result.h"

namespace peinit {

class Kernel;

// Whether module loading is locked as the kernel enforces it: module_lockdown(QUERY) on a
// patched kernel, kernel.modules_disabled on an unpatched one (QUERY fails ENOSYS).
Result<bool> ModuleLoadingLocked(Kernel& kernel);

enum class LockFallback { kNever, kOnUnpatchedKernel };

struct LockAttempt {
    // "syscall" or "modules_disabled": the mechanism tried; "" when neither was (the syscall
    // failed, and the fallback was not allowed or not permitted).
    std::string mechanism;
    bool was_locked = false;  // the syscall's QUERY said locked before LOCK
    // LOCK's errno when the syscall failed (EPERM: no SeTcb; ENOSYS: unpatched kernel), else 0.
    int syscall_errno = 0;
    Result<void> result = Ok();  // locked and read back
    // What the read-back saw: "module_lockdown(QUERY)=1, kernel.module_loading_locked=1" or
    // "kernel.modules_disabled=1, kernel.modprobe=\"\""; "" when nothing was read.
    std::string read_back;
    std::string audit;  // the fallback's audit record: "sent", "not available (...)", "failed: ..."
};

// module_lockdown(LOCK, trigger) and the read-back; on an unpatched kernel the fallback when
// `fallback` allows it, audited with `fallback_trigger` ("boot-orchestrator-step",
// "runtime-syscall").
LockAttempt LockModuleLoading(Kernel& kernel, unsigned int trigger, LockFallback fallback,
                              std::string_view fallback_trigger);

}  // namespace peinit
