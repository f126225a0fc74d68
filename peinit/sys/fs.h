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
