#pragma once

// The container of a module package: an uncompressed POSIX tar archive, read and written with
// libarchive (no tar code of our own). This layer knows nothing of manifests or signatures; it
// turns bytes into an ordered list of regular-file members, rejecting everything else
// (see PACKAGE.md, "Container").

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "peinit/core/result.h"

namespace peinit {

// A member to write, owning its bytes.
struct ArchiveMember {
    std::string path;
    std::vector<std::byte> data;
};

// A member as read: its bytes are a view into the archive's own buffer (a package is an
// uncompressed tar, so each member's data lies there contiguously). Nothing is copied; the view
// lives as long as that buffer.
struct ArchiveEntry {
    std::string path;
    std::span<const std::byte> data;
};

// Writes `members` in the given order as a ustar archive: regular files, mode 0644, owner
// 0:0, no user/group names, mtime `mtime` (SOURCE_DATE_EPOCH for reproducible output), ending
// exactly after the end-of-archive marker (two zero blocks, no padding to a record size).
// Paths are validated with ValidateMemberPath.
Result<std::vector<std::byte>> WriteArchive(std::span<const ArchiveEntry> members,
                                            std::int64_t mtime = 0);
Result<std::vector<std::byte>> WriteArchive(std::span<const ArchiveMember> members,
                                            std::int64_t mtime = 0);

// Reads an archive written by WriteArchive (or any ustar/pax writer) strictly: tar only, no
// compression; every member a regular file with a valid, unique path; sizes and member count
// within the package limits; the archive ends with its end-of-archive marker and nothing after.
// Rejections carry PackageReject reasons (package_format.h). The entries are views into `bytes`.
Result<std::vector<ArchiveEntry>> ReadArchive(std::span<const std::byte> bytes);

}  // namespace peinit
