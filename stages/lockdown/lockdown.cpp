#include "stages/lockdown/lockdown.h"

#include <linux/module_lockdown.h>
#include <spdlog/spdlog.h>

#include "peinit/sys/module_lock.h"
#include "peinit/sys/kernel.h"
#include "peinit/record/stages.h"
#include "peinit/sys/record.h"
#include "stages/measure/measure.h"

namespace peinit {

namespace {

void WriteRecord(const BootContext& ctx) {
    const LockOutcome& lock = ctx.lock;
    LockdownRecord record;
    record.requested = lock.requested;
    record.requested_by = std::string(ToString(lock.requested_by));
    record.mechanism = lock.mechanism;
    record.trigger = lock.trigger;
    record.locked = lock.locked;
    record.error = lock.error;
    record.pid = getpid();
    record.comm = "peinit";
    record.boot_offset_ms = BootOffsetMs();
    record.wall_time = WallTimeUtc();
    if (auto r = WriteFileAtomically(ctx.paths.Under(LockdownRecord::kPath).string(),
                                     record.ToJson());
        !r) {
        spdlog::error("lockdown: cannot write the boot record: {}", r.error().message());
    }
}

}  // namespace

Result<void> EngageLock(BootContext& ctx) {
    // The modules handed to the kernel before the lock, as one set, before it takes effect.
    MeasureModuleSet(ctx);
    LockOutcome& lock = ctx.lock;
    lock.requested = true;
    lock.requested_by = ctx.policy.lock_after_boot.source;
    bool from_hive = ctx.policy.lock_after_boot.source == PolicySource::kHive;
    unsigned int trigger =
        from_hive ? MODULE_LOCKDOWN_TRIGGER_REGISTRY : MODULE_LOCKDOWN_TRIGGER_BOOT;
    lock.trigger = from_hive ? "registry" : "boot-orchestrator-step";

    LockAttempt attempt = LockModuleLoading(ctx.kernel, trigger,
                                            LockFallback::kOnUnpatchedKernel,
                                            "boot-orchestrator-step");
    if (attempt.mechanism == "modules_disabled") {
        spdlog::warn(
            "lockdown: module_lockdown(2) is not available (unpatched kernel): falling "
            "back to kernel.modules_disabled=1 and an empty kernel.modprobe");
        lock.trigger = "boot-orchestrator-step";
        spdlog::info("lockdown: audit record of the fallback lock: {}", attempt.audit);
    }
    lock.mechanism = attempt.mechanism;
    const Result<void>& result = attempt.result;
    lock.locked = static_cast<bool>(result);
    lock.error = result ? "" : result.error().message();
    WriteRecord(ctx);
    // The lock as read back, measured whether it holds or not.
    MeasureLock(ctx);
    if (!result) return result;
    spdlog::info("lockdown locked=1 mechanism={} trigger={} requested_by={}", lock.mechanism,
                 lock.trigger, ToString(lock.requested_by));
    return Ok();
}

Result<void> RunLockdown(BootContext& ctx) {
    if (!ctx.policy.lock_after_boot.value) {
        spdlog::info("lockdown locked=0 reason=\"LockAfterBoot is false\"");
        WriteRecord(ctx);
        MeasureModuleSet(ctx);
        MeasureLock(ctx);
        return Ok();
    }
    return EngageLock(ctx);
}

}  // namespace peinit
