#include "peinit/sys/module_lock.h"

#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/module_lockdown.h>

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
constexpr const char* kLockedSysctl = "kernel/module_loading_locked";

Result<void> ExpectSysctl(Kernel& kernel, const char* key, const char* want) {
    auto value = kernel.ReadSysctl(key);
    if (!value) return value.error().Context("read back: ");
    if (*value != want) {
        return Err(std::string("read back: ") + key + " is \"" + *value + "\", expected \"" +
                   want + "\"");
    }
    return Ok();
}

Result<void> WriteFallback(Kernel& kernel) {
    PEINIT_TRY(kernel.WriteSysctl(kModulesDisabled, "1"));
    // "\n" empties the string (proc_dostring stops at the newline).
    if (auto m = kernel.WriteSysctl(kModprobe, "\n"); !m) {
        return m.error().Context("kernel.modprobe could not be emptied (demand loads still "
                                 "start the helper): ");
    }
    PEINIT_TRY(ExpectSysctl(kernel, kModulesDisabled, "1"));
    return ExpectSysctl(kernel, kModprobe, "");
}

void ApplyFallback(Kernel& kernel, std::string_view trigger, LockAttempt& out) {
    out.mechanism = "modules_disabled";
    out.result = WriteFallback(kernel);
    auto d = kernel.ReadSysctl(kModulesDisabled);
    auto p = kernel.ReadSysctl(kModprobe);
    out.read_back = "kernel.modules_disabled=" + (d ? *d : std::string("error")) +
                    ", kernel.modprobe=\"" + (p ? *p : std::string("error")) + "\"";
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
}

// The read-back after LOCK: the syscall's own QUERY (the state the kernel enforces), not a
// file under /proc that a mount could shadow; the sysctl, when readable, must agree.
Result<void> ReadBackSyscall(Kernel& kernel, std::string& seen) {
    auto q = kernel.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 0);
    auto s = kernel.ReadSysctl(kLockedSysctl);
    seen = "module_lockdown(QUERY)=" +
           (q ? std::to_string(*q) : "error (" + q.error().message() + ")") +
           ", kernel.module_loading_locked=" + (s ? *s : "error (" + s.error().message() + ")");
    if (!q) return q.error().Context("read back: module_lockdown(QUERY): ");
    if (*q != 1) {
        return Err("read back: module_lockdown(QUERY) returns " + std::to_string(*q) +
                   ", expected 1");
    }
    if (s && *s != "1") {
        return Err("read back: kernel.module_loading_locked is \"" + *s + "\", expected \"1\"");
    }
    return Ok();
}

}  // namespace

Result<bool> ModuleLoadingLocked(Kernel& kernel) {
    auto query = kernel.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 0);
    if (query) return *query != 0;
    if (query.error().code() != ENOSYS) return query.error().Context("module_lockdown(QUERY): ");
    auto disabled = kernel.ReadSysctl(kModulesDisabled);
    if (!disabled) return disabled.error().Context("kernel.modules_disabled: ");
    return *disabled != "0";
}

LockAttempt LockModuleLoading(Kernel& kernel, unsigned int trigger, LockFallback fallback,
                              std::string_view fallback_trigger) {
    LockAttempt out;
    auto before = kernel.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 0);
    out.was_locked = before && *before == 1;
    auto locked = kernel.ModuleLockdown(MODULE_LOCKDOWN_LOCK, trigger);
    if (locked) {
        out.mechanism = "syscall";
        out.result = ReadBackSyscall(kernel, out.read_back);
        return out;
    }
    out.syscall_errno = locked.error().code();
    out.result = locked.error().Context("module_lockdown(LOCK): ");
    if (out.syscall_errno == EPERM) {
        std::string seen;
        (void)ReadBackSyscall(kernel, seen);
        out.read_back = seen;
        return out;
    }
    if (out.syscall_errno != ENOSYS || fallback == LockFallback::kNever) return out;
    if (!kernel.HasCapability(CAP_SYS_ADMIN)) {
        out.result = Err("SeTcbPrivilege (CAP_SYS_ADMIN) required, for the fallback as for "
                         "module_lockdown(2); nothing was changed",
                         EPERM);
        return out;
    }
    ApplyFallback(kernel, fallback_trigger, out);
    return out;
}

}  // namespace peinit
