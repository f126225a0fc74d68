#include "peinit/sys/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>


namespace peinit {

Result<dev_t> DeviceOf(const std::string& path) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return ErrnoErr("stat " + path);
    return st.st_dev;
}

Result<bool> IsRamfsOrTmpfs(const std::string& path) {
    struct statfs sfs;
    if (statfs(path.c_str(), &sfs) != 0) return ErrnoErr("statfs " + path);
    return sfs.f_type == RAMFS_MAGIC || sfs.f_type == TMPFS_MAGIC;
}

Result<int> OpenInRoot(const std::string& root, const std::string& path, int flags) {
    int rootfd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return ErrnoErr("open " + root);
    struct open_how how {};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    size_t first = path.find_first_not_of('/');
    std::string relative = first == std::string::npos ? "." : path.substr(first);
    int fd = static_cast<int>(syscall(SYS_openat2, rootfd, relative.c_str(), &how, sizeof how));
    int err = errno;
    close(rootfd);
    if (fd < 0) return ErrnoErr(path + " does not resolve inside the new root", err);
    return fd;
}

OwnedFd::~OwnedFd() {
    if (fd_ >= 0) close(fd_);
}

OwnedFd& OwnedFd::operator=(OwnedFd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) close(fd_);
        fd_ = other.fd_;
        other.fd_ = -1;
    }
    return *this;
}

std::string DescriptorPath(int fd) {
    char buf[4096];
    const std::string link = "/proc/self/fd/" + std::to_string(fd);
    ssize_t n = readlink(link.c_str(), buf, sizeof buf);
    if (n <= 0) return "descriptor " + std::to_string(fd);
    return std::string(buf, static_cast<size_t>(n));
}

Result<OwnedFd> OpenMountPointInRoot(const std::string& root, const std::string& path) {
    OwnedFd rootfd(open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!rootfd) return ErrnoErr("open " + root);
    size_t first = path.find_first_not_of('/');
    if (first == std::string::npos)
        return Err(path + ": not a directory below the new root", EINVAL);
    const std::string relative = path.substr(first);
    struct open_how how {};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;  // no O_NOFOLLOW: a final link is ELOOP
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
    OwnedFd fd(
        static_cast<int>(syscall(SYS_openat2, rootfd.get(), relative.c_str(), &how, sizeof how)));
    if (fd) return fd;
    const int err = errno;
    const std::string what = path + " on the new root ";
    switch (err) {
        case ENOENT:
            return Err(what + "does not exist", err);
        case ELOOP: {
            // Name the link's target when it is the last component (the usual case: "/run").
            std::string target;
            if (relative.find('/') == std::string::npos) {
                char buf[4096];
                ssize_t n = readlinkat(rootfd.get(), relative.c_str(), buf, sizeof buf);
                if (n > 0) target = " (-> " + std::string(buf, static_cast<size_t>(n)) + ")";
            }
            return Err(what + "is or passes through a symbolic link" + target +
                           "; a mount is moved only onto a real directory",
                       err);
        }
        case ENOTDIR:
            return Err(what + "is not a directory", err);
        case EXDEV:
            return Err(what + "leaves the new root or crosses another mount", err);
        default:
            return ErrnoErr(what + "cannot be opened", err);
    }
}

Result<void> CheckExecutableInRoot(const std::string& root, const std::string& path) {
    int fd = PEINIT_TRY(OpenInRoot(root, path, O_PATH));
    struct stat st;
    int rc = fstat(fd, &st);
    int err = errno;
    close(fd);
    if (rc != 0) return ErrnoErr("stat " + path, err);
    if (!S_ISREG(st.st_mode)) return Err(path + " is not a regular file", ENOEXEC);
    if ((st.st_mode & 0111) == 0) return Err(path + " has no execute permission", EACCES);
    return Ok();
}

Result<void> ReadAhead(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return ErrnoErr("stat");
    if (!S_ISREG(st.st_mode)) return Err("not a regular file");
    if (readahead(fd, 0, static_cast<size_t>(st.st_size)) != 0) return ErrnoErr("readahead");
    return Ok();
}

std::vector<std::string> BlockFilesystems(std::string_view text) {
    std::vector<std::string> out;
    while (!text.empty()) {
        size_t eol = text.find('\n');
        std::string_view line = text.substr(0, eol);
        text = eol == std::string_view::npos ? std::string_view() : text.substr(eol + 1);
        // Each line is "nodev\tNAME" or "\tNAME".
        size_t tab = line.find('\t');
        if (tab == std::string_view::npos || line.substr(0, tab) == "nodev") continue;
        std::string_view name = line.substr(tab + 1);
        if (!name.empty()) out.emplace_back(name);
    }
    return out;
}

namespace {

size_t RemoveChildren(int dirfd, dev_t dev) {
    size_t failures = 0;
    DIR* dir = fdopendir(dirfd);
    if (dir == nullptr) {
        close(dirfd);
        return 1;
    }
    while (dirent* e = readdir(dir)) {
        std::string_view name = e->d_name;
        if (name == "." || name == "..") continue;
        struct stat st;
        if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            ++failures;
            continue;
        }
        if (st.st_dev != dev) continue;  // another mount (the new root, /proc...): leave it
        if (S_ISDIR(st.st_mode)) {
            int sub = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                ++failures;
                continue;
            }
            failures += RemoveChildren(sub, dev);
            if (unlinkat(dirfd, e->d_name, AT_REMOVEDIR) != 0) ++failures;
        } else if (unlinkat(dirfd, e->d_name, 0) != 0) {
            ++failures;
        }
    }
    closedir(dir);  // closes dirfd
    return failures;
}

}  // namespace

size_t RemoveTreeOnDevice(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return 1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return 1;
    }
    return RemoveChildren(fd, st.st_dev);
}

}  // namespace peinit
