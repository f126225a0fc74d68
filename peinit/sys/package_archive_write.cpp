#include <archive.h>
#include <archive_entry.h>

#include <memory>

#include "peinit/sys/package_archive.h"
#include "peinit/sys/package_format.h"

// The tar writer for packages, apart from the reader (package_archive.cpp) so that binaries
// that only verify packages link no libarchive writer code.

namespace peinit {
namespace {

struct WriteFree {
    void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryFree {
    void operator()(archive_entry* e) const { archive_entry_free(e); }
};

std::string ArchiveError(archive* a) {
    const char* msg = archive_error_string(a);
    return msg != nullptr ? msg : "unknown libarchive error";
}

la_ssize_t AppendToVector(archive*, void* client, const void* buf, size_t len) {
    auto* out = static_cast<std::vector<std::byte>*>(client);
    const auto* p = static_cast<const std::byte*>(buf);
    out->insert(out->end(), p, p + len);
    return static_cast<la_ssize_t>(len);
}

}  // namespace

Result<std::vector<std::byte>> WriteArchive(std::span<const ArchiveMember> members,
                                            std::int64_t mtime) {
    std::vector<ArchiveEntry> views;
    views.reserve(members.size());
    for (const auto& m : members) views.push_back({m.path, m.data});
    return WriteArchive(views, mtime);
}

Result<std::vector<std::byte>> WriteArchive(std::span<const ArchiveEntry> members,
                                            std::int64_t mtime) {
    std::vector<std::byte> out;
    std::unique_ptr<archive, WriteFree> a(archive_write_new());
    if (!a) return Err("libarchive: out of memory");
    // ustar: every field we need fits, and it has no extension headers to carry surprises.
    // Block size 0 = unblocked: the archive ends right after the end-of-archive marker.
    if (archive_write_set_format_ustar(a.get()) != ARCHIVE_OK ||
        archive_write_add_filter_none(a.get()) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(a.get(), 0) != ARCHIVE_OK ||
        archive_write_open2(a.get(), &out, nullptr, AppendToVector, nullptr, nullptr) !=
            ARCHIVE_OK) {
        return Err("libarchive: " + ArchiveError(a.get()));
    }
    std::unique_ptr<archive_entry, EntryFree> entry(archive_entry_new());
    if (!entry) return Err("libarchive: out of memory");
    for (const auto& m : members) {
        PEINIT_TRY(ValidateMemberPath(m.path));
        archive_entry_clear(entry.get());
        archive_entry_set_pathname(entry.get(), m.path.c_str());
        archive_entry_set_filetype(entry.get(), AE_IFREG);
        archive_entry_set_perm(entry.get(), 0644);
        archive_entry_set_uid(entry.get(), 0);
        archive_entry_set_gid(entry.get(), 0);
        archive_entry_set_mtime(entry.get(), mtime, 0);
        archive_entry_set_size(entry.get(), static_cast<la_int64_t>(m.data.size()));
        if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK) {
            return Err("libarchive: " + m.path + ": " + ArchiveError(a.get()));
        }
        std::size_t done = 0;
        while (done < m.data.size()) {
            la_ssize_t n = archive_write_data(a.get(), m.data.data() + done, m.data.size() - done);
            if (n <= 0) return Err("libarchive: " + m.path + ": " + ArchiveError(a.get()));
            done += static_cast<std::size_t>(n);
        }
    }
    if (archive_write_close(a.get()) != ARCHIVE_OK) {
        return Err("libarchive: " + ArchiveError(a.get()));
    }
    return out;
}

}  // namespace peinit
