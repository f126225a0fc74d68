#include "peinit/sys/status_sources.h"

#include "peinit/sys/module_lock.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/module_lockdown.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <ostream>
#include <sstream>

namespace peinit {

namespace fs = std::filesystem;

namespace {

constexpr const char* kLockedSysctl = "kernel/module_loading_locked";
constexpr const char* kModulesDisabled = "kernel/modules_disabled";
constexpr const char* kModprobe = "kernel/modprobe";
constexpr const char* kAutoloadDisabled = "kernel/module_autoload_disabled";
constexpr const char* kModprobeSealed = "kernel/modprobe_sealed";
constexpr const char* kSigEnforce = "module/module/parameters/sig_enforce";
constexpr const char* kLsmLockdown = "kernel/security/lockdown";

Result<std::string> ReadFile(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return ErrnoErr("open " + path.string());
    std::ostringstream text;
    text << in.rdbuf();
    std::string s = text.str();
    while (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
}

std::optional<bool> AsFlag(const std::string& v) {
    if (v == "1") return true;
    if (v == "0") return false;
    return std::nullopt;
}

// One record of /dev/kmsg: "PRIO,SEQ,USEC,FLAGS;MESSAGE" (continuation lines start with ' ').
// Only the kernel's own records count: PRIO is facility * 8 + level, and the kernel gives every
// record written from user space (to /dev/kmsg, by any process) a facility other than 0.
void ParseKmsgRecord(std::string_view record, std::vector<LockLogEvent>& out) {
    auto semi = record.find(';');
    if (semi == std::string_view::npos || record.empty() || record.front() == ' ') return;
    std::string_view header = record.substr(0, semi);
    std::string_view message = record.substr(semi + 1);
    std::string_view prio = header.substr(0, header.find(','));
    if (prio.empty() || prio.size() > 4 ||
        !std::all_of(prio.begin(), prio.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        std::stoi(std::string(prio)) >= 8) {
        return;
    }
    if (auto nl = message.find('\n'); nl != std::string_view::npos) message = message.substr(0, nl);
    int64_t usec = 0;
    auto c1 = header.find(',');
    auto c2 = c1 == std::string_view::npos ? c1 : header.find(',', c1 + 1);
    auto c3 = c2 == std::string_view::npos ? c2 : header.find(',', c2 + 1);
    if (c2 != std::string_view::npos) {
        std::string ts(header.substr(c2 + 1, c3 == std::string_view::npos ? c3 : c3 - c2 - 1));
        try {
            usec = std::stoll(ts);
        } catch (...) {
            usec = 0;
        }
    }
    if (auto e = ParseLockLogLine(message, usec)) out.push_back(*e);
}

}  // namespace

Result<std::string> ReadKmsg(const fs::path& kmsg) {
    int fd = open(kmsg.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return ErrnoErr(kmsg.string());
    // /dev/kmsg returns one record per read (a regular file: any amount), each ending in '\n'.
    std::string text;
    std::vector<char> buf(16384);
    for (;;) {
        ssize_t n = read(fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EPIPE) continue;  // a record was overwritten: go on
        if (n <= 0) break;                      // EOF, EAGAIN (end of the ring), error
        text.append(buf.data(), static_cast<size_t>(n));
    }
    close(fd);
    return text;
}

std::optional<std::vector<LockLogEvent>> ReadLockLog(const fs::path& kmsg, std::string& error) {
    auto text = ReadKmsg(kmsg);
    if (!text) {
        error = text.error().message();
        return std::nullopt;
    }
    std::vector<LockLogEvent> events;
    for (size_t start = 0; start < text->size();) {
        size_t nl = std::min(text->find('\n', start), text->size());
        ParseKmsgRecord(std::string_view(*text).substr(start, nl - start), events);
        start = nl + 1;
    }
    return events;
}

KernelFacts ReadKernelFacts(Kernel& kernel, const fs::path& root) {
    KernelFacts k;
    const bool live = fs::weakly_canonical(root) == fs::path("/");
    std::function<Result<std::string>(const std::string&)> sysctl, sysfs;
    if (live) {
        sysctl = [&](const std::string& key) { return kernel.ReadSysctl(key); };
        sysfs = [&](const std::string& path) { return kernel.ReadSysfs(path); };
        auto q = kernel.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 0);
        if (q) {
            k.query_locked = *q == 1;
        } else {
            k.syscall_missing = q.error().code() == ENOSYS;
            k.notes.push_back(k.syscall_missing
                                  ? "module_lockdown(2) is not available: unpatched kernel"
                                  : "module_lockdown(QUERY): " + q.error().message());
        }
    } else {
        sysctl = [&](const std::string& key) { return ReadFile(root / "proc/sys" / key); };
        sysfs = [&](const std::string& path) { return ReadFile(root / "sys" / path); };
    }
    if (auto v = sysctl(kLockedSysctl)) {
        k.sysctl_locked = AsFlag(*v);
    } else if (!k.query_locked && !k.syscall_missing) {
        k.notes.push_back("kernel.module_loading_locked: " + v.error().message());
    }
    if (auto v = sysctl(kModulesDisabled)) k.modules_disabled = AsFlag(*v);
    if (auto v = sysctl(kModprobe)) {
        k.modprobe = *v;
    } else {
        k.notes.push_back("kernel.modprobe: " + v.error().message());
    }
    // The autoload gates: the QUERY ops when the syscall answers, else the read-only
    // sysctls. A kernel without them (stock, or an older patch: EINVAL) has no gate.
    auto gate = [&](unsigned int op, const char* key) -> std::optional<bool> {
        if (live && k.query_locked) {
            auto q = kernel.ModuleLockdown(op, 0);
            if (q) return *q == 1;
        }
        if (auto v = sysctl(key)) return AsFlag(*v);
        return std::nullopt;
    };
    k.autoload_disabled = gate(MODULE_LOCKDOWN_QUERY_AUTOLOAD, kAutoloadDisabled);
    k.modprobe_sealed = gate(MODULE_LOCKDOWN_QUERY_MODPROBE, kModprobeSealed);
    if (auto v = sysfs(kSigEnforce)) k.sig_enforce = *v;
    if (auto v = sysfs(kLsmLockdown)) k.lsm_lockdown = *v;
    if (auto v = sysctl("kernel/tainted")) k.tainted = *v;

    std::string error;
    k.lock_log = ReadLockLog(live ? fs::path("/dev/kmsg") : root / "dev/kmsg", error);
    if (!k.lock_log && live) k.notes.push_back("kernel log not readable (" + error + ")");
    return k;
}

StatusInputs ReadStatusInputs(Kernel& kernel, const fs::path& root) {
    StatusInputs in;
    in.kernel = ReadKernelFacts(kernel, root);
    auto load = [&](const char* name) {
        RecordText rec;
        fs::path path = root / "run/peinit" / name;
        rec.path = path.lexically_normal().string();
        std::error_code ec;
        if (!fs::exists(path, ec)) {
            rec.error = "missing";
            return rec;
        }
        if (auto text = ReadFile(path)) {
            rec.text = *text;
        } else {
            rec.error = text.error().message();
        }
        return rec;
    };
    in.policy = load("policy.json");
    in.lockdown = load("lockdown.json");
    in.modules = load("modules.json");
    in.boot = load("boot.json");
    in.coldplug = load("coldplug.json");
    in.services = load("services.json");
    in.hotplug = load("hotplug.json");
    in.image = load("image.json");
    in.measurement = load("measurements.json");
    std::error_code ec;
    in.blacklist_exported = fs::exists(root / "run/modprobe.d/peinit-blacklist.conf", ec);
    return in;
}

int RunRuntimeLock(Kernel& kernel, bool fallback, std::ostream& out, std::ostream& err) {
    const LockAttempt lock = LockModuleLoading(
        kernel, MODULE_LOCKDOWN_TRIGGER_RUNTIME,
        fallback ? LockFallback::kOnUnpatchedKernel : LockFallback::kNever, "runtime-syscall");
    if (lock.mechanism == "syscall") {
        out << (lock.was_locked ? "peinitctl: module loading was already locked (no-op)\n"
                                : "peinitctl: module loading locked (module_lockdown LOCK, trigger "
                                  "runtime-syscall)\n");
        out << "  read back: " << lock.read_back << "\n";
        if (!lock.result) {
            err << "peinitctl: the kernel does not report the lock after LOCK succeeded ("
                << lock.result.error().message() << ")\n";
            return 1;
        }
        return 0;
    }
    if (lock.mechanism == "modules_disabled") {
        if (lock.result) {
            out << "peinitctl: module loading locked with the fallback (kernel.modules_disabled=1, "
                   "empty kernel.modprobe)\n";
        }
        (lock.result ? out : err) << "  read back: " << lock.read_back << "\n"
                                  << "  audit record: " << lock.audit << "\n";
        if (!lock.result) {
            const int code = lock.result.error().code();
            err << "peinitctl: fallback lock failed: " << lock.result.error().message()
                << (code == EPERM || code == EACCES
                        ? " (kernel.modules_disabled needs uid 0 with CAP_SYS_MODULE as well)"
                        : "")
                << "\n";
            return 1;
        }
        return 0;
    }
    switch (lock.syscall_errno) {
        case EPERM:
            err << "peinitctl: lock refused: SeTcbPrivilege (CAP_SYS_ADMIN) required\n"
                << "  read back: " << lock.read_back << "\n";
            return 1;
        case ENOSYS:
            if (fallback) {  // refused before any write
                err << "peinitctl: lock refused: " << lock.result.error().message() << "\n";
                return 1;
            }
            err << "peinitctl: this kernel has no module_lockdown(2) (unpatched): nothing "
                   "was changed.\n"
                   "  The upstream fallback is kernel.modules_disabled=1 plus an empty "
                   "kernel.modprobe (the kernel would still start the helper for demand "
                   "loads); it is one-way until reboot; the kernel does not audit it (peinitctl "
                   "sends a user-space audit record).\n"
                   "  Run `peinitctl lock --fallback` to apply it.\n";
            return 1;
        default:
            err << "peinitctl: lock failed: " << lock.result.error().message() << "\n";
            return 1;
    }
}

}  // namespace peinit
