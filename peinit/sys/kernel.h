#pragma once

// Kernel: the seam around every privileged operation peinit performs. Stages never make these
// system calls directly; they call a Kernel, which is LinuxKernel at boot and FakeKernel in tests
// (tests/fakes/: an ordered call log, scripted errors and latency, an emulated lock).
//
// Every operation returns a Result whose Error carries the errno (Error::code()), so callers
// branch on EEXIST, ENOSYS, EPERM... exactly as they would on the raw call. Implementations
// must be safe to call from several threads at once: the module loader runs parallel workers.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "peinit/core/result.h"

namespace peinit {

// How Spawn starts a process beyond argv and environment.
struct SpawnOptions {
    // Run as this uid (and gid, default: the same number) with no supplementary groups and,
    // for a non-zero uid, no capabilities. Unset: as the caller. A gid alone changes only the
    // group (and drops the supplementary groups).
    std::optional<uint32_t> uid;
    std::optional<uint32_t> gid;
    // prctl(PR_SET_NO_NEW_PRIVS) right before the exec: set-uid/set-gid bits and file
    // capabilities give the program (and everything it executes) nothing.
    bool no_new_privs = false;
    // Capabilities (CAP_* numbers) removed from the process's bounding, inheritable and ambient
    // sets before the exec, so that neither the program nor anything it executes (a set-uid
    // root or file-capability binary included) can hold them (R-28: services hold SeLoadDriver
    // and SeTcb only when their unit grants them). Failing to drop one fails the spawn.
    std::vector<int> drop_capabilities;
};

class Kernel {
  public:
    virtual ~Kernel() = default;

    // mount(2). `data` is the filesystem-specific option string ("" for none).
    virtual Result<void> Mount(const std::string& source, const std::string& target,
                               const std::string& fstype, unsigned long flags,
                               const std::string& data) = 0;
    // move_mount(2) of the mount at `from` onto the directory open on `to_fd` (an O_PATH
    // descriptor, see OpenMountPointInRoot): the mount lands on the directory that was opened and
    // checked, not on whatever a path names when it is resolved again. Neither end follows a
    // final symbolic link.
    virtual Result<void> MoveMount(const std::string& from, int to_fd) = 0;
    // The flags of the mount `path` is on (statvfs(3) f_flag: ST_RDONLY, ST_NOSUID, ST_NODEV,
    // ...; the same bits as MS_RDONLY, MS_NOSUID, MS_NODEV): how a remount is read back.
    virtual Result<unsigned long> MountFlags(const std::string& path) = 0;
    // umount2(2).
    virtual Result<void> Umount(const std::string& target, int flags) = 0;
    // mkdir(2); EEXIST is reported, the caller decides whether it matters.
    virtual Result<void> MakeDir(const std::string& path, mode_t mode) = 0;
    // mknod(2), for the device nodes early boot needs before devtmpfs (/dev/console, /dev/kmsg).
    virtual Result<void> Mknod(const std::string& path, mode_t mode, dev_t dev) = 0;

    // finit_module(2). `name` is the module's name, used by the log and the fake only (the
    // kernel reads it from the image). `params` is the kernel-syntax option string.
    virtual Result<void> FinitModule(int fd, const std::string& name, const std::string& params,
                                     int flags) = 0;
    // init_module(2) from bytes already in memory (the verified bytes of a signed package, R-10).
    virtual Result<void> InitModule(const std::string& name, std::span<const std::byte> image,
                                    const std::string& params) = 0;
    // delete_module(2); `flags` is O_NONBLOCK / O_TRUNC as for the syscall.
    virtual Result<void> DeleteModule(const std::string& name, unsigned int flags) = 0;

    // /proc/sys/<key>, e.g. "kernel/modprobe". Values are returned without the trailing newline.
    virtual Result<std::string> ReadSysctl(const std::string& key) = 0;
    virtual Result<void> WriteSysctl(const std::string& key, const std::string& value) = 0;
    // /sys/<path>, e.g. "module/module/parameters/sig_enforce".
    virtual Result<std::string> ReadSysfs(const std::string& path) = 0;
    virtual Result<void> WriteSysfs(const std::string& path, const std::string& value) = 0;

    // module_lockdown(2) (kernel/include/uapi/linux/module_lockdown.h): QUERY returns 0 or 1,
    // LOCK returns 0. ENOSYS on an unpatched kernel.
    virtual Result<int> ModuleLockdown(unsigned int op, unsigned int trigger) = 0;

    // Whether the calling process holds capability `cap` (CAP_*) in its effective set.
    virtual bool HasCapability(int cap) = 0;
    // Sends a user-space audit record of `type` (an AUDIT_USER_* / AUDIT_USYS_* message type
    // of <linux/audit.h>) with `text` ("key=value ...") over the audit netlink socket; the kernel
    // adds the caller's pid, uid, auid and session. EPROTONOSUPPORT when the kernel has no audit.
    virtual Result<void> AuditUserMessage(int type, const std::string& text) = 0;

    // reboot(2) with a LINUX_REBOOT_CMD_* / RB_* command. Does not return on success.
    virtual Result<void> Reboot(int cmd) = 0;

    // Starts a process (argv[0] is the absolute path) with exactly `env` ("K=V") as its
    // environment, in a new session, with default signal mask and dispositions; returns its
    // pid once the exec has succeeded (an exec failure is this call's error). The caller reaps.
    virtual Result<pid_t> Spawn(const std::vector<std::string>& argv,
                                const std::vector<std::string>& env,
                                const SpawnOptions& options) = 0;
    // Replaces the current process (execve). Returns only on failure.
    virtual Result<void> Exec(const std::vector<std::string>& argv,
                              const std::vector<std::string>& env) = 0;
    // Makes `new_root` (a mount point) the root: chdir, move-mount onto /, chroot. Emptying the
    // old initramfs is the caller's job (it must happen before, while it is reachable).
    virtual Result<void> SwitchRoot(const std::string& new_root) = 0;
};

}  // namespace peinit
