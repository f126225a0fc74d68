#pragma once

// File-system facts and operations the handoff to the real root needs (switch_root's guards
// and the emptying of the initramfs).

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"

namespace peinit {

// The device a path lives on (st_dev).
Result<dev_t> DeviceOf(const std::string& path);

// True when `path` is on a ramfs or tmpfs: the only roots that may be emptied and replaced.
Result<bool> IsRamfsOrTmpfs(const std::string& path);

// Checks that `path` (absolute, as seen from inside `root`) names a regular file with an
// execute bit, resolving every symlink on the way inside `root` (openat2 RESOLVE_IN_ROOT): on a
// merged-/usr root, /sbin -> usr/sbin and /usr/sbin/init -> /lib/systemd/systemd (absolute)
// mean root's /lib, never the initramfs's. The error says what is wrong.
Result<void> CheckExecutableInRoot(const std::string& root, const std::string& path);

// Opens `path` (absolute, as seen from inside `root`) resolved inside `root` as above, with
// open(2) `flags` (close-on-exec added); the descriptor is the caller's.
Result<int> OpenInRoot(const std::string& root, const std::string& path, int flags);

// A file descriptor owned by one object, closed when it goes (move-only).
class OwnedFd {
  public:
    OwnedFd() = default;
    explicit OwnedFd(int fd) : fd_(fd) {}
    ~OwnedFd();
    OwnedFd(OwnedFd&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    OwnedFd& operator=(OwnedFd&& other) noexcept;
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }

  private:
    int fd_ = -1;
};

// The path the descriptor `fd` is open on (/proc/self/fd/N), for messages and test logs;
// "descriptor N" when it cannot be read.
std::string DescriptorPath(int fd);

// Opens the directory `path` (absolute, as seen from inside `root`, e.g. "/run") as the target
// of a mount moved into `root`, as an O_PATH descriptor. Stricter than OpenInRoot: no symbolic
// link is followed at all, not even one that would stay inside `root` (a link on the root's
// disk can be re-pointed later by whoever may write there, and whatever was mounted "at /run"
// would then be elsewhere), no `..` leaves `root` and no other mount is crossed: the directory
// is a real directory of `root`'s own file system (openat2 RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV). Errors name `path` and what is wrong, with the errno
// of the resolution: ENOENT (missing), ELOOP (a symbolic link, its target named when it is the
// last component), ENOTDIR (not a directory), EXDEV (leaves the root or crosses a mount).
Result<OwnedFd> OpenMountPointInRoot(const std::string& root, const std::string& path);

// Brings the file open on `fd` into the page cache (readahead(2)), so that a later exec of it
// finds its pages there instead of waiting for the disk. May block on the file's metadata.
Result<void> ReadAhead(int fd);

// The file systems of /proc/filesystems text that need a device (lines without "nodev").
std::vector<std::string> BlockFilesystems(std::string_view proc_filesystems);

// Deletes everything below `dir` that lives on the same device as `dir` itself, without
// crossing into other mounts (what switch_root does to the initramfs, to free its memory).
// Best effort: returns the number of entries that could not be removed.
size_t RemoveTreeOnDevice(const std::string& dir);

}  // namespace peinit
