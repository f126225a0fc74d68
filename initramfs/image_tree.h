#pragma once

// ImageTree: the in-memory description of an initramfs (every path, its type, mode and bytes),
// and the deterministic cpio (newc) writer and reader built on libarchive.
//
// The tree is the single place where determinism is decided: entries are kept sorted by path,
// every parent directory is explicit, and the writer stamps each entry with the same owner,
// mtime, inode and link count whatever the host state was.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "peinit/core/result.h"

namespace peinit::image {

enum class EntryType { kFile, kDirectory, kSymlink, kCharDevice };

struct Entry {
    EntryType type = EntryType::kFile;
    uint32_t mode = 0;  // permission bits only (07777)
    std::string data;   // file contents, or the symlink target
    uint32_t rdev_major = 0;
    uint32_t rdev_minor = 0;
    std::string origin;  // where it came from (host path or description), for messages
};

enum class Compression { kNone, kGzip, kZstd };

Result<Compression> ParseCompression(const std::string& name);
const char* CompressionName(Compression c);
// The file name suffix used for default output names: "", ".gz", ".zst".
const char* CompressionSuffix(Compression c);

// Paths are stored without a leading slash ("init", "lib/x86_64-linux-gnu/libc.so.6").
class ImageTree {
  public:
    // Adds a regular file. Adding the same path again with identical bytes and mode is a no-op;
    // anything else is a conflict (two sources for one path), reported with both origins.
    Result<void> AddFile(const std::string& path, std::string data, uint32_t mode,
                         const std::string& origin);
    // Reads a host file and adds it.
    Result<void> AddHostFile(const std::string& path, const std::string& host_path, uint32_t mode);
    Result<void> AddDirectory(const std::string& path, uint32_t mode = 0755);
    Result<void> AddSymlink(const std::string& path, const std::string& target);
    Result<void> AddCharDevice(const std::string& path, uint32_t mode, uint32_t major,
                               uint32_t minor);

    bool Contains(const std::string& path) const;
    const Entry* Find(const std::string& path) const;
    const std::map<std::string, Entry>& entries() const { return entries_; }
    // Sum of file sizes (uncompressed payload).
    uint64_t PayloadBytes() const;

  private:
    Result<void> Add(const std::string& path, Entry entry);
    Result<void> EnsureParents(const std::string& path);

    std::map<std::string, Entry> entries_;
};

// Normalizes "/a//b/" to "a/b"; rejects "..", empty and NUL-containing paths.
Result<std::string> NormalizeImagePath(const std::string& path);

struct WriteOptions {
    Compression compression = Compression::kZstd;
    // Stamped on every entry; SOURCE_DATE_EPOCH when set, else 0.
    int64_t mtime = 0;
};

// Writes the tree as a newc cpio archive to `output`, atomically: the bytes go to a temporary
// file in the same directory that is renamed over `output` only when complete, so a failure
// leaves no partial file behind.
Result<void> WriteCpio(const ImageTree& tree, const std::string& output, const WriteOptions& opts);

// One entry as read back from an archive (for tests and `peinit-image list`).
struct ListedEntry {
    std::string path;
    EntryType type = EntryType::kFile;
    uint32_t mode = 0;
    uint64_t size = 0;
    int64_t mtime = 0;
    int64_t uid = 0, gid = 0;
    uint64_t ino = 0;
    uint32_t nlink = 0;
    uint32_t rdev_major = 0, rdev_minor = 0;
    std::string data;  // file contents or symlink target
};

// One cpio archive of an image file: where it starts (for a compressed one, where the compressed
// stream starts), its compression ("none", "gzip", "zstd", ... as libarchive names it) and its
// entries.
struct ListedArchive {
    uint64_t offset = 0;
    std::string compression;
    std::vector<ListedEntry> entries;
};

// Reads every cpio archive of an image file with libarchive, as the kernel does: archives one
// after the other, each compressed or not, NUL padding between them (`peinit-image list`).
Result<std::vector<ListedArchive>> ReadCpioArchives(const std::string& path);
// The entries of all of them, in order.
Result<std::vector<ListedEntry>> ReadCpio(const std::string& path);

// SOURCE_DATE_EPOCH from the environment (0 when unset); an unparsable value is an error.
Result<int64_t> SourceDateEpoch();

}  // namespace peinit::image
