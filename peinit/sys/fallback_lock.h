#pragma once

// The upstream lock for kernels without module_lockdown(2), shared by PID 1's lock
// stage and `peinitctl lock --fallback`: kernel.modules_disabled=1 stops explicit loads, and
// kernel.modprobe is emptied because the kernel would still start the helper as root for demand
// loads; both are read back. modules_disabled leaves no audit trail of its own (the patched
// kernel audits LOCK itself), so a user-space record is sent (type 1127, libaudit's AUDIT_USYS_CONFIG: `op=
// module-lockdown-fallback mechanism=modules_disabled trigger=T res=success|failed`) when the
// kernel has audit; its outcome is reported, never the lock's error.

#include <string>
#include <string_view>

#include "peinit/core/result.h"

namespace peinit {

class Kernel;

struct FallbackLockOutcome {
    Result<void> result = Ok();  // the lock: written and read back
    std::string audit;           // "sent", "not available (...)" or "failed: ..."
};

FallbackLockOutcome ApplyFallbackLock(Kernel& kernel, std::string_view trigger);

}  // namespace peinit
