#include "peinit/sys/linux_kernel.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/module_lockdown.h>
#include <linux/netlink.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "peinit/sys/fs.h"

namespace peinit {

namespace {

// Sysctl keys and sysfs paths are relative and must not climb out of their tree.
Result<std::string> UnderTree(std::string_view tree, const std::string& relative) {
    if (relative.empty() || relative[0] == '/' || relative.find("..") != std::string::npos) {
        return Err("invalid " + std::string(tree) + " path \"" + relative + "\"", EINVAL);
    }
    return std::string(tree) + "/" + relative;
}



Result<std::string> ReadWhole(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoErr("open " + path);
    std::string out;
    char buf[4096];
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            ::close(fd);
            return ErrnoErr("read " + path, err);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

// Procfs and sysfs handlers take one write(2) per value; a short write is an error.
Result<void> WriteWhole(const std::string& path, const std::string& value) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoErr("open " + path);
    ssize_t n;
    do {
        n = ::write(fd, value.data(), value.size());
    } while (n < 0 && errno == EINTR);
    int err = errno;
    ::close(fd);
    if (n < 0) return ErrnoErr("write " + path, err);
    if (static_cast<size_t>(n) != value.size()) return Err("short write to " + path, EIO);
    return Ok();
}

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
    out.push_back(nullptr);
    return out;
}

}  // namespace

Result<void> LinuxKernel::Mount(const std::string& source, const std::string& target,
                                const std::string& fstype, unsigned long flags,
                                const std::string& data) {
    if (::mount(source.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(), flags,
                data.empty() ? nullptr : data.c_str()) != 0) {
        return ErrnoErr("mount " + source + " on " + target);
    }
    return Ok();
}

Result<void> LinuxKernel::MoveMount(const std::string& from, int to_fd) {
    if (::move_mount(AT_FDCWD, from.c_str(), to_fd, "", MOVE_MOUNT_T_EMPTY_PATH) != 0) {
        return ErrnoErr("move mount " + from + " onto " + DescriptorPath(to_fd));
    }
    return Ok();
}

Result<unsigned long> LinuxKernel::MountFlags(const std::string& path) {
    struct statvfs st {};
    if (::statvfs(path.c_str(), &st) != 0) return ErrnoErr("statvfs " + path);
    return static_cast<unsigned long>(st.f_flag);
}

Result<void> LinuxKernel::Umount(const std::string& target, int flags) {
    if (::umount2(target.c_str(), flags) != 0) return ErrnoErr("umount " + target);
    return Ok();
}

Result<void> LinuxKernel::MakeDir(const std::string& path, mode_t mode) {
    if (::mkdir(path.c_str(), mode) != 0) return ErrnoErr("mkdir " + path);
    return Ok();
}

Result<void> LinuxKernel::Mknod(const std::string& path, mode_t mode, dev_t dev) {
    if (::mknod(path.c_str(), mode, dev) != 0) return ErrnoErr("mknod " + path);
    return Ok();
}

Result<void> LinuxKernel::FinitModule(int fd, const std::string& name, const std::string& params,
                                      int flags) {
    if (::syscall(SYS_finit_module, fd, params.c_str(), flags) != 0) {
        return ErrnoErr("finit_module " + name);
    }
    return Ok();
}

Result<void> LinuxKernel::InitModule(const std::string& name, std::span<const std::byte> image,
                                     const std::string& params) {
    if (::syscall(SYS_init_module, image.data(), image.size(), params.c_str()) != 0) {
        return ErrnoErr("init_module " + name);
    }
    return Ok();
}

Result<void> LinuxKernel::DeleteModule(const std::string& name, unsigned int flags) {
    if (::syscall(SYS_delete_module, name.c_str(), flags) != 0) {
        return ErrnoErr("delete_module " + name);
    }
    return Ok();
}

Result<std::string> LinuxKernel::ReadSysctl(const std::string& key) {
    return ReadWhole(PEINIT_TRY(UnderTree("/proc/sys", key)));
}

Result<void> LinuxKernel::WriteSysctl(const std::string& key, const std::string& value) {
    return WriteWhole(PEINIT_TRY(UnderTree("/proc/sys", key)), value);
}

Result<std::string> LinuxKernel::ReadSysfs(const std::string& path) {
    return ReadWhole(PEINIT_TRY(UnderTree("/sys", path)));
}

Result<void> LinuxKernel::WriteSysfs(const std::string& path, const std::string& value) {
    return WriteWhole(PEINIT_TRY(UnderTree("/sys", path)), value);
}

Result<int> LinuxKernel::ModuleLockdown(unsigned int op, unsigned int trigger) {
#ifdef __NR_module_lockdown
    long r = ::syscall(__NR_module_lockdown, op, trigger);
    if (r < 0) {
        return ErrnoErr("module_lockdown(" + std::to_string(op) + ", " + std::to_string(trigger) +
                        ")");
    }
    return static_cast<int>(r);
#else
    // The syscall is only wired for x86-64 (see the uapi header): elsewhere the kernel is, for
    // peinit's purposes, unpatched.
    (void)op;
    (void)trigger;
    return Err("module_lockdown: not available on this architecture", ENOSYS);
#endif
}

bool LinuxKernel::HasCapability(int cap) {
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capget, &header, data) != 0) return false;
    return (data[CAP_TO_INDEX(cap)].effective & CAP_TO_MASK(cap)) != 0;
}

Result<void> LinuxKernel::AuditUserMessage(int type, const std::string& text) {
    int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
    if (fd < 0) return ErrnoErr("audit netlink socket");
    struct {
        nlmsghdr header;
        char text[AUDIT_MESSAGE_TEXT_MAX];
    } request{};
    const std::size_t length = std::min(text.size(), sizeof(request.text) - 1);
    std::memcpy(request.text, text.data(), length);
    request.header.nlmsg_len = NLMSG_LENGTH(length + 1);
    request.header.nlmsg_type = static_cast<uint16_t>(type);
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    request.header.nlmsg_seq = 1;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    timeval timeout{1, 0};  // the kernel answers at once; never hang PID 1 on audit
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    if (::sendto(fd, &request, request.header.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&kernel),
                 sizeof(kernel)) < 0) {
        int err = errno;
        ::close(fd);
        return ErrnoErr("audit netlink send", err);
    }
    alignas(nlmsghdr) char reply[256];
    ssize_t n = ::recv(fd, reply, sizeof(reply), 0);
    int err = n < 0 ? errno : 0;
    ::close(fd);
    if (n < 0) return ErrnoErr("audit netlink acknowledgement", err);
    auto* answer = reinterpret_cast<nlmsghdr*>(reply);
    if (NLMSG_OK(answer, static_cast<unsigned>(n)) && answer->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(answer));
        if (e->error != 0) return ErrnoErr("audit record", -e->error);
    }
    return Ok();
}

Result<void> LinuxKernel::Reboot(int cmd) {
    ::sync();
    if (::reboot(cmd) != 0) return ErrnoErr("reboot");
    return Ok();
}

namespace {

// In a forked child, before the exec: removes each capability from the bounding set (so no exec
// can gain it back: a root program without file capabilities gets its permitted set from the
// bounding and inheritable sets), from the inheritable set (whose bits also survive an exec as
// root) and from the ambient set. Only raw system calls: async-signal-safe. False with errno
// set when one of them fails.
bool DropCapabilities(const std::vector<int>& caps) {
    if (caps.empty()) return true;
    for (int cap : caps) {
        // A capability this kernel does not know (EINVAL) is one nobody can hold.
        if (::prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0 && errno == EINVAL) continue;
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) return false;
        if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, cap, 0, 0) != 0) return false;
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capget, &header, data) != 0) return false;
    for (int cap : caps) {
        if (CAP_TO_INDEX(cap) < _LINUX_CAPABILITY_U32S_3) {
            data[CAP_TO_INDEX(cap)].inheritable &= ~CAP_TO_MASK(cap);
        }
    }
    return ::syscall(SYS_capset, &header, data) == 0;
}

}  // namespace

Result<pid_t> LinuxKernel::Spawn(const std::vector<std::string>& argv,
                                 const std::vector<std::string>& env, const SpawnOptions& options) {
    if (argv.empty()) return Err("spawn: empty argv", EINVAL);
    // Prepared before fork: the child only makes async-signal-safe calls (the parent may have
    // worker threads).
    auto args = CStrings(argv);
    auto envp = CStrings(env);
    // The child writes its errno here if anything before or at exec fails; CLOEXEC closes it
    // on success, so a zero-length read means the program is running.
    int report[2];
    if (::pipe2(report, O_CLOEXEC) != 0) return ErrnoErr("spawn " + argv[0] + ": pipe");
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        ::close(report[0]);
        ::close(report[1]);
        return ErrnoErr("spawn " + argv[0] + ": fork", err);
    }
    if (pid == 0) {
        // PID 1 blocks signals for its signalfd: children start with a clean mask and default
        // dispositions instead of inheriting init's.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
        ::setsid();
        bool ok = DropCapabilities(options.drop_capabilities);
        if (ok && (options.uid || options.gid)) {
            gid_t gid = options.gid.value_or(options.uid.value_or(0));
            // Groups first: after setuid() to a non-root uid they can no longer be changed.
            ok = ::setgroups(0, nullptr) == 0 && ::setgid(gid) == 0 &&
                 (!options.uid || ::setuid(*options.uid) == 0);
        }
        if (ok && options.no_new_privs) ok = ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
        if (ok) ::execve(args[0], args.data(), envp.data());
        int err = errno;
        (void)!::write(report[1], &err, sizeof err);
        ::_exit(127);
    }
    ::close(report[1]);
    int child_errno = 0;
    ssize_t n;
    do {
        n = ::read(report[0], &child_errno, sizeof child_errno);
    } while (n < 0 && errno == EINTR);
    ::close(report[0]);
    if (n > 0) {
        ::waitpid(pid, nullptr, 0);
        return ErrnoErr("spawn " + argv[0], child_errno);
    }
    return pid;
}

Result<void> LinuxKernel::Exec(const std::vector<std::string>& argv,
                               const std::vector<std::string>& env) {
    if (argv.empty()) return Err("exec: empty argv", EINVAL);
    auto args = CStrings(argv);
    auto envp = CStrings(env);
    // The new program starts clean, as it would from the kernel: every descriptor beyond
    // 0-2 (the console) closed, an empty signal mask and default dispositions (execve resets
    // caught signals but keeps ignored ones and the mask). Done so that a failed execve leaves
    // this process as it was: descriptors are only marked close-on-exec, mask and ignored
    // signals are restored.
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        // A kernel without it (before 5.11): every open descriptor from 3 on, one by one. A
        // descriptor that cannot be marked would leak into the new program: no exec then.
        if (auto marked = MarkCloseOnExecFrom(3); !marked) {
            return marked.error().Context("exec " + argv[0] + ": ");
        }
    }
    sigset_t none, old_mask;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, &old_mask);
    std::vector<int> ignored;
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction sa {};
        if (::sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler == SIG_IGN) {
            ::signal(sig, SIG_DFL);
            ignored.push_back(sig);
        }
    }
    ::execve(argv[0].c_str(), args.data(), envp.data());
    int err = errno;
    for (int sig : ignored) ::signal(sig, SIG_IGN);
    ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
    return ErrnoErr("exec " + argv[0], err);
}

Result<void> LinuxKernel::SwitchRoot(const std::string& new_root) {
    if (::chdir(new_root.c_str()) != 0) return ErrnoErr("chdir " + new_root);
    if (::mount(new_root.c_str(), "/", nullptr, MS_MOVE, nullptr) != 0) {
        return ErrnoErr("move mount " + new_root + " to /");
    }
    if (::chroot(".") != 0) return ErrnoErr("chroot " + new_root);
    if (::chdir("/") != 0) return ErrnoErr("chdir / in " + new_root);
    return Ok();
}

Result<void> MarkCloseOnExecFrom(int first) {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return ErrnoErr("open /proc/self/fd");
    const int own = ::dirfd(dir);
    std::string failed;
    while (const dirent* e = ::readdir(dir)) {
        char* end = nullptr;
        const long fd = std::strtol(e->d_name, &end, 10);
        if (end == e->d_name || *end != '\0' || fd < first || fd == own) continue;
        if (::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC) != 0 && errno != EBADF) {
            failed += (failed.empty() ? "" : ", ") + std::to_string(fd);
        }
    }
    ::closedir(dir);
    if (!failed.empty()) return Err("cannot mark descriptors " + failed + " close-on-exec");
    return Ok();
}

}  // namespace peinit
