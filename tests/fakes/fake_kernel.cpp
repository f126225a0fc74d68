#include "tests/fakes/fake_kernel.h"

#include <sys/mount.h>

#include <linux/capability.h>
#include <linux/module_lockdown.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "peinit/core/cmdline.h"
#include "peinit/core/module_policy.h"
#include "peinit/sys/fs.h"

namespace peinit {

namespace {

constexpr const char* kModulesDisabled = "kernel/modules_disabled";
constexpr const char* kLockedSysctl = "kernel/module_loading_locked";
constexpr const char* kAutoloadSysctl = "kernel/module_autoload_disabled";
constexpr const char* kSealedSysctl = "kernel/modprobe_sealed";

bool IsKnownTrigger(unsigned int trigger) {
    return trigger == MODULE_LOCKDOWN_TRIGGER_REGISTRY ||
           trigger == MODULE_LOCKDOWN_TRIGGER_RUNTIME || trigger == MODULE_LOCKDOWN_TRIGGER_BOOT;
}

std::string Join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& w : words) {
        if (!out.empty()) out += ' ';
        out += w;
    }
    return out;
}

std::string StripNewline(std::string value) {
    if (!value.empty() && value.back() == '\n') value.pop_back();
    return value;
}

}  // namespace

std::string_view ToString(KernelOp op) {
    switch (op) {
        case KernelOp::kMount:
            return "mount";
        case KernelOp::kMoveMount:
            return "move_mount";
        case KernelOp::kUmount:
            return "umount";
        case KernelOp::kMakeDir:
            return "mkdir";
        case KernelOp::kMknod:
            return "mknod";
        case KernelOp::kFinitModule:
            return "finit_module";
        case KernelOp::kInitModule:
            return "init_module";
        case KernelOp::kDeleteModule:
            return "delete_module";
        case KernelOp::kReadSysctl:
            return "read_sysctl";
        case KernelOp::kWriteSysctl:
            return "write_sysctl";
        case KernelOp::kReadSysfs:
            return "read_sysfs";
        case KernelOp::kWriteSysfs:
            return "write_sysfs";
        case KernelOp::kModuleLockdown:
            return "module_lockdown";
        case KernelOp::kReboot:
            return "reboot";
        case KernelOp::kAudit:
            return "audit";
        case KernelOp::kSpawn:
            return "spawn";
        case KernelOp::kExec:
            return "exec";
        case KernelOp::kSwitchRoot:
            return "switch_root";
    }
    return "?";
}

FakeKernel::FakeKernel() {
    sysctl_["kernel/modprobe"] = "/sbin/modprobe";
    sysctl_[kModulesDisabled] = "0";
    sysfs_[kSigEnforcePath] = "N";
}

// --- scripting ---------------------------------------------------------------------------------

void FakeKernel::SetModuleError(const std::string& module, int err) {
    std::lock_guard lock(mutex_);
    module_errors_[NormalizeModuleName(module)] = err;
}

void FakeKernel::SetModuleLatency(const std::string& module, std::chrono::milliseconds latency) {
    std::lock_guard lock(mutex_);
    module_latency_[NormalizeModuleName(module)] = latency;
}

void FakeKernel::SetLoaded(const std::string& module) {
    std::lock_guard lock(mutex_);
    std::string name = NormalizeModuleName(module);
    if (std::find(loaded_.begin(), loaded_.end(), name) == loaded_.end()) loaded_.push_back(name);
}

void FakeKernel::SetPrivileged(bool privileged) {
    std::lock_guard lock(mutex_);
    privileged_ = privileged;
}

void FakeKernel::SetUnpatched(bool unpatched) {
    std::lock_guard lock(mutex_);
    unpatched_ = unpatched;
}

void FakeKernel::SetNoAutoloadGates(bool none) {
    std::lock_guard lock(mutex_);
    no_autoload_gates_ = none;
}

void FakeKernel::SetAuditAvailable(bool available) {
    std::lock_guard lock(mutex_);
    audit_available_ = available;
}

bool FakeKernel::IsAutoloadDisabled() const {
    std::lock_guard lock(mutex_);
    return autoload_disabled_;
}

bool FakeKernel::IsModprobeSealed() const {
    std::lock_guard lock(mutex_);
    return modprobe_sealed_;
}

void FakeKernel::SetOpError(KernelOp op, const std::string& name, int err) {
    std::lock_guard lock(mutex_);
    op_errors_[{op, name}] = err;
}

void FakeKernel::ThrowOn(KernelOp op, const std::string& name, int times) {
    std::lock_guard lock(mutex_);
    op_throws_[{op, name}] = times;
}

void FakeKernel::MaybeThrow(KernelOp op, const std::string& name) {
    auto it = op_throws_.find({op, name});
    if (it == op_throws_.end() || it->second <= 0) return;
    --it->second;
    throw std::runtime_error("fake kernel: injected exception in " + std::string(ToString(op)) +
                             " " + name);
}

void FakeKernel::SetSysctl(const std::string& key, const std::string& value) {
    std::lock_guard lock(mutex_);
    sysctl_[key] = value;
}

// --- inspection --------------------------------------------------------------------------------

std::vector<KernelCall> FakeKernel::Calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
}

std::vector<KernelCall> FakeKernel::Calls(KernelOp op) const {
    std::lock_guard lock(mutex_);
    std::vector<KernelCall> out;
    std::copy_if(calls_.begin(), calls_.end(), std::back_inserter(out),
                 [op](const KernelCall& c) { return c.op == op; });
    return out;
}

std::vector<std::string> FakeKernel::CallNames(KernelOp op) const {
    std::vector<std::string> names;
    for (const KernelCall& c : Calls(op)) names.push_back(c.name);
    return names;
}

std::vector<std::string> FakeKernel::LoadedModules() const {
    std::lock_guard lock(mutex_);
    return loaded_;
}

bool FakeKernel::IsLocked() const {
    std::lock_guard lock(mutex_);
    return locked_;
}

std::optional<unsigned int> FakeKernel::LockTrigger() const {
    std::lock_guard lock(mutex_);
    return lock_trigger_;
}

std::optional<std::string> FakeKernel::Sysctl(const std::string& key) const {
    std::lock_guard lock(mutex_);
    if (key == kLockedSysctl && !unpatched_) return std::string(locked_ ? "1" : "0");
    if (!unpatched_ && !no_autoload_gates_) {
        if (key == kAutoloadSysctl) return std::string(autoload_disabled_ ? "1" : "0");
        if (key == kSealedSysctl) return std::string(modprobe_sealed_ ? "1" : "0");
    }
    auto it = sysctl_.find(key);
    if (it == sysctl_.end()) return std::nullopt;
    return it->second;
}

int FakeKernel::MaxConcurrentLoads() const {
    std::lock_guard lock(mutex_);
    return max_in_flight_;
}

// --- helpers -----------------------------------------------------------------------------------

Result<void> FakeKernel::Record(KernelOp op, std::string name, std::string args, int error,
                                Clock::time_point start) {
    std::string what = std::string(ToString(op)) + " " + name;
    std::lock_guard lock(mutex_);
    calls_.push_back({op, std::move(name), std::move(args), error, start, Clock::now(),
                      std::this_thread::get_id()});
    if (error != 0) return ErrnoErr(what, error);
    return Ok();
}

int FakeKernel::ScriptedError(KernelOp op, const std::string& name) const {
    auto it = op_errors_.find({op, name});
    return it == op_errors_.end() ? 0 : it->second;
}

std::optional<std::string> FakeKernel::ModuleInitState(const std::string& path) const {
    constexpr std::string_view kPrefix = "module/", kSuffix = "/initstate";
    std::string_view p = path;
    if (!p.starts_with(kPrefix) || !p.ends_with(kSuffix)) return std::nullopt;
    std::string name(p.substr(kPrefix.size(), p.size() - kPrefix.size() - kSuffix.size()));
    if (std::find(loaded_.begin(), loaded_.end(), name) != loaded_.end()) return "live";
    if (loading_.count(name) != 0) return "coming";
    return std::nullopt;
}

bool FakeKernel::ModulesLockedLocked() const {
    auto it = sysctl_.find(kModulesDisabled);
    return locked_ || (it != sysctl_.end() && it->second == "1");
}

// --- module operations -------------------------------------------------------------------------

Result<void> FakeKernel::LoadModule(KernelOp op, const std::string& name,
                                    const std::string& params) {
    const auto start = Clock::now();
    const std::string key = NormalizeModuleName(name);
    std::chrono::milliseconds latency{0};
    {
        std::unique_lock lock(mutex_);
        // the lock is checked before anything else.
        int early = ModulesLockedLocked() ? EPERM : ScriptedError(op, key);
        if (early == 0) {
            // Like add_unformed_module(): wait for an in-flight load of the same module, then
            // EEXIST if it went live.
            load_done_.wait(lock, [&] { return loading_.count(key) == 0; });
            if (std::find(loaded_.begin(), loaded_.end(), key) != loaded_.end()) early = EEXIST;
        }
        if (early != 0) {
            lock.unlock();
            return Record(op, name, params, early, start);
        }
        loading_.insert(key);
        max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
        if (auto it = module_latency_.find(key); it != module_latency_.end()) latency = it->second;
    }

    // Outside the lock, so concurrent loads of different modules overlap.
    if (latency.count() > 0) std::this_thread::sleep_for(latency);

    int error = 0;
    {
        std::lock_guard lock(mutex_);
        loading_.erase(key);
        --in_flight_;
        if (auto it = module_errors_.find(key); it != module_errors_.end()) error = it->second;
        if (error == 0) loaded_.push_back(key);
    }
    load_done_.notify_all();
    return Record(op, name, params, error, start);
}

Result<void> FakeKernel::FinitModule(int /*fd*/, const std::string& name, const std::string& params,
                                     int /*flags*/) {
    return LoadModule(KernelOp::kFinitModule, name, params);
}

Result<void> FakeKernel::InitModule(const std::string& name, std::span<const std::byte> image,
                                    const std::string& params) {
    {
        std::lock_guard lock(mutex_);
        images_[NormalizeModuleName(name)].assign(image.begin(), image.end());
    }
    return LoadModule(KernelOp::kInitModule, name, params);
}

std::vector<std::byte> FakeKernel::InitModuleImage(const std::string& name) const {
    std::lock_guard lock(mutex_);
    auto it = images_.find(NormalizeModuleName(name));
    return it == images_.end() ? std::vector<std::byte>{} : it->second;
}

Result<void> FakeKernel::DeleteModule(const std::string& name, unsigned int flags) {
    const auto start = Clock::now();
    const std::string key = NormalizeModuleName(name);
    int error = 0;
    {
        std::lock_guard lock(mutex_);
        auto it = std::find(loaded_.begin(), loaded_.end(), key);
        if (ModulesLockedLocked()) {
            error = EPERM;
        } else if (int scripted = ScriptedError(KernelOp::kDeleteModule, key); scripted != 0) {
            error = scripted;
        } else if (it == loaded_.end()) {
            error = ENOENT;
        } else {
            loaded_.erase(it);
        }
    }
    return Record(KernelOp::kDeleteModule, name, "flags=" + std::to_string(flags), error, start);
}

Result<int> FakeKernel::ModuleLockdown(unsigned int op, unsigned int trigger) {
    const auto start = Clock::now();
    int error = 0;
    int value = 0;
    {
        std::lock_guard lock(mutex_);
        MaybeThrow(KernelOp::kModuleLockdown, std::to_string(op));
        const bool gate_op = op >= MODULE_LOCKDOWN_DISABLE_AUTOLOAD &&
                             op <= MODULE_LOCKDOWN_QUERY_MODPROBE;
        const bool query = op == MODULE_LOCKDOWN_QUERY || op == MODULE_LOCKDOWN_QUERY_AUTOLOAD ||
                           op == MODULE_LOCKDOWN_QUERY_MODPROBE;
        if (unpatched_) {
            error = ENOSYS;
        } else if (gate_op && no_autoload_gates_) {
            error = EINVAL;  // an older patch: unknown op
        } else if (query) {
            if (trigger != 0 && !IsKnownTrigger(trigger)) {
                error = EINVAL;
            } else if (op == MODULE_LOCKDOWN_QUERY) {
                value = locked_ ? 1 : 0;
            } else if (op == MODULE_LOCKDOWN_QUERY_AUTOLOAD) {
                value = autoload_disabled_ ? 1 : 0;
            } else {
                value = modprobe_sealed_ ? 1 : 0;
            }
        } else if ((op != MODULE_LOCKDOWN_LOCK && op != MODULE_LOCKDOWN_DISABLE_AUTOLOAD &&
                    op != MODULE_LOCKDOWN_SEAL_MODPROBE) ||
                   !IsKnownTrigger(trigger)) {
            error = EINVAL;
        } else if (!privileged_) {
            error = EPERM;  // and the flag stays as it was
        } else if (op == MODULE_LOCKDOWN_DISABLE_AUTOLOAD) {
            autoload_disabled_ = true;
        } else if (op == MODULE_LOCKDOWN_SEAL_MODPROBE) {
            modprobe_sealed_ = true;
        } else {
            if (!locked_) lock_trigger_ = trigger;
            locked_ = true;
        }
    }
    auto r =
        Record(KernelOp::kModuleLockdown, "module_lockdown",
               "op=" + std::to_string(op) + " trigger=" + std::to_string(trigger), error, start);
    if (!r) return r.error();
    return value;
}

// --- sysctl / sysfs ----------------------------------------------------------------------------

Result<std::string> FakeKernel::ReadSysctl(const std::string& key) {
    const auto start = Clock::now();
    std::optional<std::string> value = Sysctl(key);
    int error = 0;
    {
        std::lock_guard lock(mutex_);
        error = ScriptedError(KernelOp::kReadSysctl, key);
    }
    if (error == 0 && !value) error = ENOENT;
    auto r = Record(KernelOp::kReadSysctl, key, value.value_or(""), error, start);
    if (!r) return r.error();
    return *value;
}

Result<void> FakeKernel::WriteSysctl(const std::string& key, const std::string& raw) {
    const auto start = Clock::now();
    const std::string value = StripNewline(raw);
    int error = 0;
    {
        std::lock_guard lock(mutex_);
        MaybeThrow(KernelOp::kWriteSysctl, key);
        if (int scripted = ScriptedError(KernelOp::kWriteSysctl, key); scripted != 0) {
            error = scripted;
        } else if (key == kLockedSysctl) {
            // Mode 0444: even root's open(O_WRONLY) is refused.
            error = unpatched_ ? ENOENT : EACCES;
        } else if ((key == kAutoloadSysctl || key == kSealedSysctl)) {
            error = unpatched_ || no_autoload_gates_ ? ENOENT : EACCES;
        } else if (key == "kernel/modprobe" && modprobe_sealed_) {
            error = EPERM;  // MODULE_LOCKDOWN_SEAL_MODPROBE: one-way, root included
        } else if (sysctl_.count(key) == 0) {
            error = ENOENT;
        } else if (key == kModulesDisabled) {
            // proc_dointvec_minmax with min = max = 1: the only writable value is 1, so it is
            // one-way.
            if (value == "1") {
                sysctl_[key] = "1";
            } else {
                error = EINVAL;
            }
        } else {
            sysctl_[key] = value;
        }
    }
    return Record(KernelOp::kWriteSysctl, key, value, error, start);
}

Result<std::string> FakeKernel::ReadSysfs(const std::string& path) {
    const auto start = Clock::now();
    int error = 0;
    std::string value;
    {
        std::lock_guard lock(mutex_);
        auto it = sysfs_.find(path);
        if (int scripted = ScriptedError(KernelOp::kReadSysfs, path); scripted != 0) {
            error = scripted;
        } else if (it != sysfs_.end()) {
            value = it->second;
        } else if (auto state = ModuleInitState(path)) {
            value = *state;  // like /sys/module/NAME/initstate of a module we loaded
        } else {
            error = ENOENT;
        }
    }
    auto r = Record(KernelOp::kReadSysfs, path, value, error, start);
    if (!r) return r.error();
    return value;
}

Result<void> FakeKernel::WriteSysfs(const std::string& path, const std::string& raw) {
    const auto start = Clock::now();
    const std::string value = StripNewline(raw);
    int error = 0;
    {
        std::lock_guard lock(mutex_);
        auto it = sysfs_.find(path);
        if (int scripted = ScriptedError(KernelOp::kWriteSysfs, path); scripted != 0) {
            error = scripted;
        } else if (it == sysfs_.end()) {
            error = ENOENT;
        } else if (path == kSigEnforcePath) {
            // param_set_bool_enable_only(): may be turned on, never off again.
            auto on = ParseKernelBool(value);
            if (!on) {
                error = EINVAL;
            } else if (*on) {
                it->second = "Y";
            } else if (it->second == "Y") {
                error = EROFS;
            }
        } else {
            it->second = value;
        }
    }
    return Record(KernelOp::kWriteSysfs, path, value, error, start);
}

// --- everything else: recorded, scripted errors only -------------------------------------------

Result<void> FakeKernel::Mount(const std::string& source, const std::string& target,
                               const std::string& fstype, unsigned long flags,
                               const std::string& data) {
    const auto start = Clock::now();
    int error;
    {
        std::lock_guard lock(mutex_);
        MaybeThrow(KernelOp::kMount, target);
        error = ScriptedError(KernelOp::kMount, target);
        if (error == 0) {
            mount_flags_[target] = flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
        }
    }
    return Record(KernelOp::kMount, target,
                  source + " " + fstype + " flags=" + std::to_string(flags) + " " + data, error,
                  start);
}

Result<void> FakeKernel::MoveMount(const std::string& from, int to_fd) {
    const auto start = Clock::now();
    const std::string target = DescriptorPath(to_fd);
    int error;
    {
        std::lock_guard lock(mutex_);
        MaybeThrow(KernelOp::kMoveMount, target);
        error = ScriptedError(KernelOp::kMoveMount, target);
    }
    return Record(KernelOp::kMoveMount, target, from, error, start);
}

Result<unsigned long> FakeKernel::MountFlags(const std::string& path) {
    std::lock_guard lock(mutex_);
    std::size_t best = 0;
    unsigned long flags = 0;
    for (const auto& [target, f] : mount_flags_) {
        const bool under = path == target || (path.starts_with(target) &&
                                              (target.ends_with('/') || path[target.size()] == '/'));
        if (under && target.size() >= best) {
            best = target.size();
            flags = f;
        }
    }
    return flags;
}

Result<void> FakeKernel::Umount(const std::string& target, int flags) {
    const auto start = Clock::now();
    int error;
    {
        std::lock_guard lock(mutex_);
        error = ScriptedError(KernelOp::kUmount, target);
    }
    return Record(KernelOp::kUmount, target, "flags=" + std::to_string(flags), error, start);
}

Result<void> FakeKernel::MakeDir(const std::string& path, mode_t mode) {
    const auto start = Clock::now();
    int error;
    {
        std::lock_guard lock(mutex_);
        error = ScriptedError(KernelOp::kMakeDir, path);
    }
    return Record(KernelOp::kMakeDir, path, "mode=" + std::to_string(mode), error, start);
}

Result<void> FakeKernel::Mknod(const std::string& path, mode_t mode, dev_t dev) {
    const auto start = Clock::now();
    int error;
    {
        std::lock_guard lock(mutex_);
        error = ScriptedError(KernelOp::kMknod, path);
    }
    return Record(KernelOp::kMknod, path,
                  "mode=" + std::to_string(mode) + " dev=" + std::to_string(dev), error, start);
}

bool FakeKernel::HasCapability(int cap) {
    std::lock_guard lock(mutex_);
    return privileged_ || (cap != CAP_SYS_ADMIN && cap != CAP_SYS_MODULE);
}

Result<void> FakeKernel::AuditUserMessage(int type, const std::string& text) {
    const auto start = Clock::now();
    int error;
    {
        std::lock_guard lock(mutex_);
        error = !audit_available_ ? EPROTONOSUPPORT
                                  : ScriptedError(KernelOp::kAudit, std::to_string(type));
    }
    return Record(KernelOp::kAudit, std::to_string(type), text, error, start);
}

Result<void> FakeKernel::Reboot(int cmd) {
    const auto start = Clock::now();
    int error;
    {
        std::lock_guard lock(mutex_);
        error = ScriptedError(KernelOp::kReboot, "reboot");
    }
    // Unlike the real call, a successful fake reboot returns, so tests can inspect the log.
    return Record(KernelOp::kReboot, "reboot", "cmd=" + std::to_string(cmd), error, start);
}

Result<pid_t> FakeKernel::Spawn(const std::vector<std::string>& argv,
                                const std::vector<std::string>& env, const SpawnOptions& options) {
    const auto start = Clock::now();
    std::string program = argv.empty() ? "" : argv[0];
    int error;
    pid_t pid = 0;
    {
        std::lock_guard lock(mutex_);
        error = argv.empty() ? EINVAL : ScriptedError(KernelOp::kSpawn, program);
        if (error == 0) pid = next_pid_++;
    }
    std::string args = Join(argv) + " | " + Join(env);
    if (options.uid) args += " | uid=" + std::to_string(*options.uid);
    if (options.gid) args += " | gid=" + std::to_string(*options.gid);
    if (options.no_new_privs) args += " | no_new_privs";
    if (!options.drop_capabilities.empty()) {
        std::string caps;
        for (int cap : options.drop_capabilities) {
            caps += (caps.empty() ? "" : ",") + std::to_string(cap);
        }
        args += " | drop_caps=" + caps;
    }
    auto r = Record(KernelOp::kSpawn, program, args, error, start);
    if (!r) return r.error();
    return pid;
}

Result<void> FakeKernel::Exec(const std::vector<std::string>& argv,
                              const std::vector<std::string>& env) {
    const auto start = Clock::now();
    std::string program = argv.empty() ? "" : argv[0];
    int error;
    {
        std::lock_guard lock(mutex_);
        error = argv.empty() ? EINVAL : ScriptedError(KernelOp::kExec, program);
    }
    // A successful fake exec returns Ok (the real one would not return at all).
    return Record(KernelOp::kExec, program, Join(argv) + " | " + Join(env), error, start);
}

Result<void> FakeKernel::SwitchRoot(const std::string& new_root) {
    const auto start = Clock::now();
    int error;
    {
        std::lock_guard lock(mutex_);
        error = ScriptedError(KernelOp::kSwitchRoot, new_root);
    }
    return Record(KernelOp::kSwitchRoot, new_root, "", error, start);
}

}  // namespace peinit
