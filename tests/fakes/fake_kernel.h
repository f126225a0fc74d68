#pragma once

// FakeKernel: an in-memory Kernel for tests. It behaves like our patched Linux 6.1 where tests
// depend on it:
//   - a second load of a loaded module fails with EEXIST; a load racing an in-flight load of the
//     same module waits for it and then fails with EEXIST (or proceeds, if the first failed),
//   - scripted errno and latency per module (the sleep happens inside the call, outside the
//     fake's lock, so parallel loads really overlap),
//   - module_lockdown QUERY/LOCK with the uapi header's semantics: EINVAL for unknown ops or
//     triggers, EPERM without SeTcb (flag unchanged), repeated LOCK is a no-op; ENOSYS in
//     unpatched mode,
//   - once locked (or after kernel/modules_disabled=1), init/finit/delete_module fail with EPERM
//     before anything else, as R-05 requires,
//   - a sysctl table with the kernel's rules for modules_disabled (only 1 may be written),
//     module_loading_locked (read-only) and sig_enforce (one-way, R-14).
// Every call is appended to an ordered log with start/end times. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "peinit/sys/kernel.h"

namespace peinit {

enum class KernelOp {
    kMount,
    kMoveMount,
    kUmount,
    kMakeDir,
    kMknod,
    kFinitModule,
    kInitModule,
    kDeleteModule,
    kReadSysctl,
    kWriteSysctl,
    kReadSysfs,
    kWriteSysfs,
    kModuleLockdown,
    kReboot,
    kAudit,
    kSpawn,
    kExec,
    kSwitchRoot,
};
std::string_view ToString(KernelOp op);

struct KernelCall {
    KernelOp op;
    // The module, path or sysctl key the call was about.
    std::string name;
    // The rest, rendered: module params, the written value, "op=1 trigger=3", argv joined.
    std::string args;
    // The errno the call failed with, 0 on success.
    int error = 0;
    std::chrono::steady_clock::time_point start;
    std::chrono::steady_clock::time_point end;
    std::thread::id thread;
};

class FakeKernel : public Kernel {
  public:
    FakeKernel();

    // --- scripting -------------------------------------------------------------------------
    // Every load of `module` fails with `err` (ENOENT, ENOEXEC, EKEYREJECTED, ...).
    void SetModuleError(const std::string& module, int err);
    // Every load of `module` takes `latency` (inside the call).
    void SetModuleLatency(const std::string& module, std::chrono::milliseconds latency);
    // Marks a module as already loaded (a later load gets EEXIST).
    void SetLoaded(const std::string& module);
    // Whether the caller holds SeTcb (CAP_SYS_ADMIN): without it LOCK fails with EPERM.
    void SetPrivileged(bool privileged);
    // An unpatched kernel: module_lockdown fails with ENOSYS and there is no
    // kernel/module_loading_locked sysctl.
    void SetUnpatched(bool unpatched);
    // A patched kernel from before the autoload gates: module_lockdown's
    // DISABLE_AUTOLOAD, SEAL_MODPROBE and their QUERY ops fail with EINVAL, and their sysctls
    // are absent.
    void SetNoAutoloadGates(bool none);
    // A kernel without audit (CONFIG_AUDIT off): AuditUserMessage fails with EPROTONOSUPPORT.
    void SetAuditAvailable(bool available);
    // Fails every call of `op` on `name` (a path, key or module) with `err`.
    void SetOpError(KernelOp op, const std::string& name, int err);
    void SetSysctl(const std::string& key, const std::string& value);
    // The next `times` calls of `op` on `name` throw std::runtime_error before doing anything
    // (a bug or std::bad_alloc on the caller's side, for exception-safety tests). Honoured by
    // Mount and MoveMount (the target), WriteSysctl (the key) and ModuleLockdown (the op number as
    // text).
    void ThrowOn(KernelOp op, const std::string& name, int times = 1);

    // --- inspection ------------------------------------------------------------------------
    std::vector<KernelCall> Calls() const;
    std::vector<KernelCall> Calls(KernelOp op) const;
    // The names of the calls of `op`, in call order (the modules handed to init_module, ...).
    std::vector<std::string> CallNames(KernelOp op) const;
    // Loaded modules in load-completion order.
    std::vector<std::string> LoadedModules() const;
    bool IsLocked() const;
    // DISABLE_AUTOLOAD / SEAL_MODPROBE have been applied (sealed: kernel.modprobe writes fail
    // with EPERM).
    bool IsAutoloadDisabled() const;
    bool IsModprobeSealed() const;
    // The trigger of the LOCK that set the flag (nullopt while unlocked).
    std::optional<unsigned int> LockTrigger() const;
    std::optional<std::string> Sysctl(const std::string& key) const;
    // The bytes the last init_module of `module` was given (empty: never called).
    std::vector<std::byte> InitModuleImage(const std::string& module) const;
    // The most loads that were in flight at the same time (parallelism tests).
    int MaxConcurrentLoads() const;

    // --- Kernel ----------------------------------------------------------------------------
    Result<void> Mount(const std::string& source, const std::string& target,
                       const std::string& fstype, unsigned long flags,
                       const std::string& data) override;
    // Recorded with name = the path `to_fd` is open on, args = `from`; scripted errors and
    // ThrowOn by that path. Nothing is moved.
    Result<void> MoveMount(const std::string& from, int to_fd) override;
    // The flags of the last Mount of the longest mounted target `path` is under (a remount
    // replaces them; MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC kept); 0 when nothing is mounted
    // there. Not recorded (a read).
    Result<unsigned long> MountFlags(const std::string& path) override;
    Result<void> Umount(const std::string& target, int flags) override;
    Result<void> MakeDir(const std::string& path, mode_t mode) override;
    Result<void> Mknod(const std::string& path, mode_t mode, dev_t dev) override;
    Result<void> FinitModule(int fd, const std::string& name, const std::string& params,
                             int flags) override;
    Result<void> InitModule(const std::string& name, std::span<const std::byte> image,
                            const std::string& params) override;
    Result<void> DeleteModule(const std::string& name, unsigned int flags) override;
    Result<std::string> ReadSysctl(const std::string& key) override;
    Result<void> WriteSysctl(const std::string& key, const std::string& value) override;
    Result<std::string> ReadSysfs(const std::string& path) override;
    Result<void> WriteSysfs(const std::string& path, const std::string& value) override;
    Result<int> ModuleLockdown(unsigned int op, unsigned int trigger) override;
    // SetPrivileged(false) drops CAP_SYS_ADMIN and CAP_SYS_MODULE; every other cap is held.
    bool HasCapability(int cap) override;
    // Recorded (op kAudit, name = the type, args = the text); EPROTONOSUPPORT after
    // SetAuditAvailable(false).
    Result<void> AuditUserMessage(int type, const std::string& text) override;
    Result<void> Reboot(int cmd) override;
    Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                        const SpawnOptions& options) override;
    Result<void> Exec(const std::vector<std::string>& argv,
                      const std::vector<std::string>& env) override;
    Result<void> SwitchRoot(const std::string& new_root) override;

    static constexpr const char* kSigEnforcePath = "module/module/parameters/sig_enforce";

  private:
    using Clock = std::chrono::steady_clock;

    // Records a finished call; returns the Result for `error`.
    Result<void> Record(KernelOp op, std::string name, std::string args, int error,
                        Clock::time_point start);
    int ScriptedError(KernelOp op, const std::string& name) const;  // needs mutex_ held
    // Throws when ThrowOn scripted it (needs mutex_ held).
    void MaybeThrow(KernelOp op, const std::string& name);
    bool ModulesLockedLocked() const;
    // "live"/"coming" for module/NAME/initstate of a module loaded (or loading) here; needs
    // mutex_ held.
    std::optional<std::string> ModuleInitState(const std::string& path) const;
    Result<void> LoadModule(KernelOp op, const std::string& name, const std::string& params);

    mutable std::mutex mutex_;
    std::condition_variable load_done_;
    std::vector<KernelCall> calls_;
    std::map<std::string, int> module_errors_;
    std::map<std::string, std::chrono::milliseconds> module_latency_;
    std::map<std::pair<KernelOp, std::string>, int> op_errors_;
    std::map<std::pair<KernelOp, std::string>, int> op_throws_;
    std::vector<std::string> loaded_;
    std::map<std::string, unsigned long> mount_flags_;
    std::map<std::string, std::vector<std::byte>> images_;
    std::set<std::string> loading_;
    int in_flight_ = 0;
    int max_in_flight_ = 0;
    bool privileged_ = true;
    bool unpatched_ = false;
    bool locked_ = false;
    bool no_autoload_gates_ = false;
    bool audit_available_ = true;
    bool autoload_disabled_ = false;
    bool modprobe_sealed_ = false;
    std::optional<unsigned int> lock_trigger_;
    std::map<std::string, std::string> sysctl_;
    std::map<std::string, std::string> sysfs_;
    pid_t next_pid_ = 100;
};

}  // namespace peinit
