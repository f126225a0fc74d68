#include "peinit/sys/fallback_lock.h"

#include <linux/audit.h>

#include <cerrno>

#include "peinit/sys/kernel.h"

namespace peinit {

namespace {

// libaudit's AUDIT_USYS_CONFIG ("user space system config change"), in <linux/audit.h>'s
// AUDIT_FIRST_USER_MSG..AUDIT_LAST_USER_MSG range; the kernel header does not name it.
constexpr int kAuditUsysConfig = 1127;
static_assert(kAuditUsysConfig > AUDIT_FIRST_USER_MSG && kAuditUsysConfig < AUDIT_LAST_USER_MSG);

constexpr const char* kModulesDisabled = "kernel/modules_disabled";
constexpr const char* kModprobe = "kernel/modprobe";

Result<void> ExpectSysctl(Kernel& kernel, const char* key, const char* want) {
    auto value = kernel.ReadSysctl(key);
    if (!value) return value.error().Context("read back: ");
    if (*value != want) {
        return Err(std::string("read back: ") + key + " is \"" + *value + "\", expected \"" +
                   want + "\"");
    }
    return Ok();
}

Result<void> Lock(Kernel& kernel) {
    PEINIT_TRY(kernel.WriteSysctl(kModulesDisabled, "1"));
    // "\n" empties the string (proc_dostring stops at the newline).
    if (auto m = kernel.WriteSysctl(kModprobe, "\n"); !m) {
        return m.error().Context("kernel.modprobe could not be emptied (demand loads still "
                                 "start the helper): ");
    }
    PEINIT_TRY(ExpectSysctl(kernel, kModulesDisabled, "1"));
    return ExpectSysctl(kernel, kModprobe, "");
}

}  // namespace

FallbackLockOutcome ApplyFallbackLock(Kernel& kernel, std::string_view trigger) {
    FallbackLockOutcome out;
    out.result = Lock(kernel);
    const std::string text = "op=module-lockdown-fallback mechanism=modules_disabled trigger=" +
                             std::string(trigger) + " res=" + (out.result ? "success" : "failed");
    auto sent = kernel.AuditUserMessage(kAuditUsysConfig, text);
    if (sent) {
        out.audit = "sent";
    } else if (sent.error().code() == EPROTONOSUPPORT) {
        out.audit = "not available (the kernel has no audit)";
    } else {
        out.audit = "failed: " + sent.error().message();
    }
    return out;
}

}  // namespace peinit
