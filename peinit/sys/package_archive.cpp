#include "peinit/sys/package_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <unordered_set>

#include "peinit/sys/package_format.h"

namespace peinit {
namespace {

constexpr std::size_t kBlock = 512;
constexpr std::size_t kEndMarker = 2 * kBlock;

struct ReadFree {
    void operator()(archive* a) const { archive_read_free(a); }
};
struct EntryFree {
    void operator()(archive_entry* e) const { archive_entry_free(e); }
};

std::string ArchiveError(archive* a) {
    const char* msg = archive_error_string(a);
    return msg != nullptr ? msg : "unknown libarchive error";
}

std::size_t RoundUp(std::size_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// Bytes the tar reader has consumed from our buffer so far (there is no decompression filter,
// so this is an offset into the package).
std::size_t Consumed(archive* a) { return static_cast<std::size_t>(archive_filter_bytes(a, -1)); }

std::string_view FileTypeName(archive_entry* e) {
    if (archive_entry_hardlink(e) != nullptr) return "hard link";
    switch (archive_entry_filetype(e)) {
        case AE_IFLNK:
            return "symbolic link";
        case AE_IFDIR:
            return "directory";
        case AE_IFCHR:
            return "character device";
        case AE_IFBLK:
            return "block device";
        case AE_IFIFO:
            return "fifo";
        case AE_IFSOCK:
            return "socket";
        default:
            return "special file";
    }
}

// libarchive reports running out of input as "Truncated ..." (tar reader) and we cannot get a
// finer code from it; everything else it rejects is a damaged or foreign container.
Unexpected ContainerError(archive* a, std::size_t total) {
    std::string msg = ArchiveError(a);
    const std::size_t consumed = Consumed(a);
    if (msg.find("runcated") != std::string::npos || (consumed > 0 && consumed + kBlock > total)) {
        return Reject(PackageReject::kTruncated, msg);
    }
    return Reject(PackageReject::kNotAPackage, msg);
}

}  // namespace

Result<std::vector<ArchiveEntry>> ReadArchive(std::span<const std::byte> bytes) {
    const std::size_t total = bytes.size();
    if (total == 0) return Reject(PackageReject::kEmpty, "zero bytes");
    if (total > kMaxPackageBytes) {
        return Reject(PackageReject::kTooLarge, std::to_string(total) + " bytes (limit " +
                                                    std::to_string(kMaxPackageBytes) + ")");
    }

    std::unique_ptr<archive, ReadFree> a(archive_read_new());
    if (!a) return Err("libarchive: out of memory");
    // Tar only, and no decompression filter: a package is never compressed, so a compressed or
    // foreign container is rejected instead of being unpacked by code we do not need.
    if (archive_read_support_format_tar(a.get()) != ARCHIVE_OK) {
        return Err("libarchive: " + ArchiveError(a.get()));
    }
    if (archive_read_open_memory(a.get(), bytes.data(), total) != ARCHIVE_OK) {
        return ContainerError(a.get(), total);
    }

    std::vector<ArchiveEntry> members;
    std::unordered_set<std::string> seen;
    std::size_t data_end = 0;  // offset just past the last member's padded data
    while (true) {
        archive_entry* e = nullptr;
        int r = archive_read_next_header(a.get(), &e);
        if (r == ARCHIVE_EOF) break;
        // ARCHIVE_WARN too: libarchive warns about things it tolerates (bad pax attributes, odd
        // headers) and we tolerate nothing.
        if (r != ARCHIVE_OK) return ContainerError(a.get(), total);
        if (members.size() >= kMaxPackageFiles + 2) {
            return Reject(PackageReject::kTooLarge,
                          "more than " + std::to_string(kMaxPackageFiles + 2) + " members");
        }
        const char* raw_path = archive_entry_pathname(e);
        std::string path = raw_path != nullptr ? raw_path : "";
        if (archive_entry_hardlink(e) != nullptr || archive_entry_filetype(e) != AE_IFREG) {
            return Reject(PackageReject::kNotRegularFile,
                          "\"" + path + "\" is a " + std::string(FileTypeName(e)));
        }
        if (archive_entry_sparse_count(e) > 0) {
            return Reject(PackageReject::kNotRegularFile, "\"" + path + "\" is a sparse file");
        }
        PEINIT_TRY(ValidateMemberPath(path));
        if (!seen.insert(path).second) {
            return Reject(PackageReject::kDuplicatePath, "\"" + path + "\" appears twice");
        }
        if (!archive_entry_size_is_set(e) || archive_entry_size(e) < 0) {
            return Reject(PackageReject::kNotAPackage, "\"" + path + "\" has no size");
        }
        auto size = static_cast<std::uint64_t>(archive_entry_size(e));
        if (size > kMaxPayloadFileBytes) {
            return Reject(PackageReject::kTooLarge, "\"" + path + "\" is " + std::to_string(size) +
                                                        " bytes (limit " +
                                                        std::to_string(kMaxPayloadFileBytes) + ")");
        }
        // The header (and any extension headers before it) is consumed by now; the data follows.
        const std::size_t header_end = Consumed(a.get());
        if (header_end > total || size > total - header_end) {
            return Reject(PackageReject::kTruncated, "\"" + path + "\" is cut short");
        }
        // The data follows the header in our buffer (no compression filter): take it as a view
        // and let libarchive skip it, so a package's bytes are never copied.
        ArchiveEntry member;
        member.path = std::move(path);
        member.data = bytes.subspan(header_end, static_cast<std::size_t>(size));
        if (archive_read_data_skip(a.get()) != ARCHIVE_OK) return ContainerError(a.get(), total);
        data_end = header_end + RoundUp(member.data.size());
        // The block padding after the data must be zeros (as every writer makes it): nothing
        // rides along in a package that the manifest does not account for.
        if (data_end > total || Consumed(a.get()) != data_end) {
            return Reject(PackageReject::kTruncated, "\"" + member.path + "\" is cut short");
        }
        auto padding = bytes.subspan(header_end + member.data.size(),
                                     data_end - header_end - member.data.size());
        if (!std::all_of(padding.begin(), padding.end(),
                         [](std::byte b) { return b == std::byte{0}; })) {
            return Reject(PackageReject::kNotAPackage,
                          "\"" + member.path + "\" has non-zero padding after its data");
        }
        members.push_back(std::move(member));
    }

    if (members.empty()) return Reject(PackageReject::kEmpty, "the archive has no members");
    // libarchive also accepts an archive that just stops after a member; we require the marker
    // so that a cut at a member boundary is reported as truncation.
    if (total < data_end + kEndMarker) {
        return Reject(PackageReject::kTruncated, "no end-of-archive marker");
    }
    auto marker = bytes.subspan(data_end, kEndMarker);
    if (!std::all_of(marker.begin(), marker.end(), [](std::byte b) { return b == std::byte{0}; })) {
        return Reject(PackageReject::kTrailingData, "data after the first end-of-archive block");
    }
    if (total > data_end + kEndMarker) {
        return Reject(PackageReject::kTrailingData, std::to_string(total - data_end - kEndMarker) +
                                                        " bytes after the end-of-archive marker");
    }
    if (Consumed(a.get()) != total) {
        // Our accounting and libarchive's disagree: treat the container as damaged.
        return Reject(PackageReject::kNotAPackage, "archive layout is inconsistent");
    }
    return members;
}

}  // namespace peinit
