#include "initramfs/image_tree.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace peinit::image {

Result<Compression> ParseCompression(const std::string& name) {
    if (name == "none") return Compression::kNone;
    if (name == "gzip") return Compression::kGzip;
    if (name == "zstd") return Compression::kZstd;
    return Err("unknown compression \"" + name + "\" (expected none, gzip or zstd)");
}

const char* CompressionName(Compression c) {
    switch (c) {
        case Compression::kNone:
            return "none";
        case Compression::kGzip:
            return "gzip";
        case Compression::kZstd:
            return "zstd";
    }
    return "?";
}

const char* CompressionSuffix(Compression c) {
    switch (c) {
        case Compression::kNone:
            return "";
        case Compression::kGzip:
            return ".gz";
        case Compression::kZstd:
            return ".zst";
    }
    return "";
}

Result<std::string> NormalizeImagePath(const std::string& path) {
    if (path.find('\0') != std::string::npos) return Err("image path contains a NUL byte");
    std::string out;
    std::stringstream ss(path);
    std::string part;
    while (std::getline(ss, part, '/')) {
        if (part.empty() || part == ".") continue;
        if (part == "..") return Err("image path \"" + path + "\" contains \"..\"");
        if (!out.empty()) out += '/';
        out += part;
    }
    if (out.empty()) return Err("image path \"" + path + "\" names the root");
    return out;
}

static const char* TypeName(EntryType t) {
    switch (t) {
        case EntryType::kFile:
            return "file";
        case EntryType::kDirectory:
            return "directory";
        case EntryType::kSymlink:
            return "symlink";
        case EntryType::kCharDevice:
            return "character device";
    }
    return "?";
}

Result<void> ImageTree::EnsureParents(const std::string& path) {
    for (size_t pos = path.find('/'); pos != std::string::npos; pos = path.find('/', pos + 1)) {
        std::string parent = path.substr(0, pos);
        auto it = entries_.find(parent);
        if (it == entries_.end()) {
            Entry dir;
            dir.type = EntryType::kDirectory;
            dir.mode = 0755;
            dir.origin = "parent of " + path;
            entries_.emplace(parent, std::move(dir));
        } else if (it->second.type != EntryType::kDirectory) {
            return Err("/" + path + ": parent /" + parent + " is a " + TypeName(it->second.type) +
                       " (from " + it->second.origin + ")");
        }
    }
    return Ok();
}

Result<void> ImageTree::Add(const std::string& raw_path, Entry entry) {
    std::string path = PEINIT_TRY(NormalizeImagePath(raw_path));
    entry.mode &= 07777;
    PEINIT_TRY(EnsureParents(path));
    auto it = entries_.find(path);
    if (it != entries_.end()) {
        Entry& old = it->second;
        if (old.type == EntryType::kDirectory && entry.type == EntryType::kDirectory) {
            // An explicit directory overrides an implicit parent's default mode.
            if (old.origin.rfind("parent of ", 0) == 0) old = std::move(entry);
            return Ok();
        }
        if (old.type == entry.type && old.mode == entry.mode && old.data == entry.data &&
            old.rdev_major == entry.rdev_major && old.rdev_minor == entry.rdev_minor) {
            return Ok();
        }
        return Err("/" + path + " is provided twice: by " + old.origin + " and by " + entry.origin);
    }
    // A new directory must not sit below a non-directory; EnsureParents checked the ancestors.
    entries_.emplace(path, std::move(entry));
    return Ok();
}

Result<void> ImageTree::AddFile(const std::string& path, std::string data, uint32_t mode,
                                const std::string& origin) {
    Entry e;
    e.type = EntryType::kFile;
    e.mode = mode;
    e.data = std::move(data);
    e.origin = origin;
    return Add(path, std::move(e));
}

Result<void> ImageTree::AddHostFile(const std::string& path, const std::string& host_path,
                                    uint32_t mode) {
    int fd = ::open(host_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoErr(host_path);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        return ErrnoErr(host_path, e);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Err(host_path + ": not a regular file");
    }
    std::string data;
    data.resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < data.size()) {
        ssize_t n = ::read(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            return ErrnoErr(host_path, e);
        }
        if (n == 0) break;
        done += static_cast<size_t>(n);
    }
    ::close(fd);
    data.resize(done);
    return AddFile(path, std::move(data), mode, host_path);
}

Result<void> ImageTree::AddDirectory(const std::string& path, uint32_t mode) {
    Entry e;
    e.type = EntryType::kDirectory;
    e.mode = mode;
    e.origin = "directory /" + path;
    return Add(path, std::move(e));
}

Result<void> ImageTree::AddSymlink(const std::string& path, const std::string& target) {
    Entry e;
    e.type = EntryType::kSymlink;
    e.mode = 0777;
    e.data = target;
    e.origin = "symlink to " + target;
    return Add(path, std::move(e));
}

Result<void> ImageTree::AddCharDevice(const std::string& path, uint32_t mode, uint32_t major,
                                      uint32_t minor) {
    Entry e;
    e.type = EntryType::kCharDevice;
    e.mode = mode;
    e.rdev_major = major;
    e.rdev_minor = minor;
    e.origin = "device node /" + path;
    return Add(path, std::move(e));
}

bool ImageTree::Contains(const std::string& path) const { return Find(path) != nullptr; }

const Entry* ImageTree::Find(const std::string& raw_path) const {
    auto path = NormalizeImagePath(raw_path);
    if (!path) return nullptr;
    auto it = entries_.find(*path);
    return it == entries_.end() ? nullptr : &it->second;
}

uint64_t ImageTree::PayloadBytes() const {
    uint64_t sum = 0;
    for (const auto& [path, e] : entries_)
        if (e.type == EntryType::kFile) sum += e.data.size();
    return sum;
}

Result<int64_t> SourceDateEpoch() {
    const char* v = std::getenv("SOURCE_DATE_EPOCH");
    if (v == nullptr || *v == '\0') return int64_t{0};
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < 0)
        return Err(std::string("SOURCE_DATE_EPOCH=\"") + v +
                   "\" is not a non-negative number of seconds");
    return static_cast<int64_t>(n);
}

namespace {

// Owns a libarchive write handle.
struct ArchiveWriter {
    struct archive* a = archive_write_new();
    ~ArchiveWriter() {
        if (a != nullptr) archive_write_free(a);
    }
};

struct EntryHandle {
    struct archive_entry* e = archive_entry_new();
    ~EntryHandle() { archive_entry_free(e); }
};

std::string ArchiveError(struct archive* a, const std::string& what) {
    const char* msg = archive_error_string(a);
    return what + ": " + (msg != nullptr ? msg : "libarchive error");
}

mode_t TypeBits(EntryType t) {
    switch (t) {
        case EntryType::kFile:
            return AE_IFREG;
        case EntryType::kDirectory:
            return AE_IFDIR;
        case EntryType::kSymlink:
            return AE_IFLNK;
        case EntryType::kCharDevice:
            return AE_IFCHR;
    }
    return AE_IFREG;
}

// Writes the whole archive to an open fd.
Result<void> WriteArchiveTo(int fd, const ImageTree& tree, const WriteOptions& opts,
                            const std::string& name) {
    ArchiveWriter w;
    struct archive* a = w.a;
    if (archive_write_set_format_cpio_newc(a) != ARCHIVE_OK)
        return Err(ArchiveError(a, "cpio newc format"));
    int r = ARCHIVE_OK;
    switch (opts.compression) {
        case Compression::kNone:
            r = archive_write_add_filter_none(a);
            break;
        case Compression::kGzip:
            r = archive_write_add_filter_gzip(a);
            // Without this libarchive stamps the current time into the gzip header.
            if (r == ARCHIVE_OK)
                r = archive_write_set_filter_option(a, "gzip", "timestamp", nullptr);
            break;
        case Compression::kZstd:
            r = archive_write_add_filter_zstd(a);
            break;
    }
    if (r != ARCHIVE_OK)
        return Err(ArchiveError(a, std::string(CompressionName(opts.compression)) + " filter"));
    // No zero padding after the last block: the file ends where the stream ends.
    archive_write_set_bytes_in_last_block(a, 1);
    if (archive_write_open_fd(a, fd) != ARCHIVE_OK) return Err(ArchiveError(a, name));

    uint64_t ino = 0;
    for (const auto& [path, e] : tree.entries()) {
        EntryHandle h;
        struct archive_entry* ae = h.e;
        archive_entry_set_pathname(ae, path.c_str());
        archive_entry_set_mode(ae, TypeBits(e.type) | (e.mode & 07777));
        archive_entry_set_uid(ae, 0);
        archive_entry_set_gid(ae, 0);
        archive_entry_set_mtime(ae, opts.mtime, 0);
        archive_entry_set_dev(ae, 0);
        // Deterministic inode numbers: the entry's position in sorted order (never 0).
        archive_entry_set_ino64(ae, ++ino);
        archive_entry_set_nlink(ae, e.type == EntryType::kDirectory ? 2 : 1);
        switch (e.type) {
            case EntryType::kFile:
                archive_entry_set_size(ae, static_cast<la_int64_t>(e.data.size()));
                break;
            case EntryType::kSymlink:
                archive_entry_set_symlink(ae, e.data.c_str());
                archive_entry_set_size(ae, 0);
                break;
            case EntryType::kCharDevice:
                archive_entry_set_rdevmajor(ae, e.rdev_major);
                archive_entry_set_rdevminor(ae, e.rdev_minor);
                archive_entry_set_size(ae, 0);
                break;
            case EntryType::kDirectory:
                archive_entry_set_size(ae, 0);
                break;
        }
        if (archive_write_header(a, ae) != ARCHIVE_OK)
            return Err(ArchiveError(a, name + ": /" + path));
        if (e.type == EntryType::kFile && !e.data.empty()) {
            la_ssize_t n = archive_write_data(a, e.data.data(), e.data.size());
            if (n < 0 || static_cast<size_t>(n) != e.data.size())
                return Err(ArchiveError(a, name + ": /" + path));
        }
    }
    if (archive_write_close(a) != ARCHIVE_OK) return Err(ArchiveError(a, name));
    return Ok();
}

}  // namespace

Result<void> WriteCpio(const ImageTree& tree, const std::string& output, const WriteOptions& opts) {
    std::string dir = ".";
    std::string base = output;
    if (auto slash = output.rfind('/'); slash != std::string::npos) {
        dir = slash == 0 ? "/" : output.substr(0, slash);
        base = output.substr(slash + 1);
    }
    if (base.empty()) return Err(output + ": output names a directory");
    std::string tmpl = dir + "/." + base + ".tmp.XXXXXX";
    int fd = ::mkstemp(tmpl.data());
    if (fd < 0) return ErrnoErr("cannot create a temporary file in " + dir);
    auto fail = [&](Error e) -> Result<void> {
        ::close(fd);
        ::unlink(tmpl.c_str());
        return e;
    };
    auto written = WriteArchiveTo(fd, tree, opts, output);
    if (!written) return fail(written.error());
    if (::fchmod(fd, 0644) != 0) return fail(Error::FromErrno(tmpl));
    // No fsync: this is a build artifact, and rename() alone already guarantees that readers
    // see either the old file or the complete new one.
    if (::close(fd) != 0) {
        int e = errno;
        ::unlink(tmpl.c_str());
        return ErrnoErr(tmpl, e);
    }
    if (::rename(tmpl.c_str(), output.c_str()) != 0) {
        int e = errno;
        ::unlink(tmpl.c_str());
        return ErrnoErr("rename to " + output, e);
    }
    return Ok();
}

namespace {

struct ArchiveReader {
    struct archive* a = archive_read_new();
    ~ArchiveReader() { archive_read_free(a); }
};

// Reads the entries of the archive open in `a` up to its trailer.
Result<std::vector<ListedEntry>> ReadEntries(struct archive* a, const std::string& where) {
    std::vector<ListedEntry> out;
    struct archive_entry* ae = nullptr;
    int r;
    while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
        ListedEntry le;
        le.path = archive_entry_pathname(ae);
        mode_t m = archive_entry_mode(ae);
        switch (m & AE_IFMT) {
            case AE_IFDIR:
                le.type = EntryType::kDirectory;
                break;
            case AE_IFLNK:
                le.type = EntryType::kSymlink;
                break;
            case AE_IFCHR:
                le.type = EntryType::kCharDevice;
                break;
            default:
                le.type = EntryType::kFile;
                break;
        }
        le.mode = m & 07777;
        le.size = static_cast<uint64_t>(archive_entry_size(ae));
        le.mtime = archive_entry_mtime(ae);
        le.uid = archive_entry_uid(ae);
        le.gid = archive_entry_gid(ae);
        le.ino = static_cast<uint64_t>(archive_entry_ino64(ae));
        le.nlink = archive_entry_nlink(ae);
        le.rdev_major = archive_entry_rdevmajor(ae);
        le.rdev_minor = archive_entry_rdevminor(ae);
        if (le.type == EntryType::kSymlink) {
            const char* t = archive_entry_symlink(ae);
            le.data = t != nullptr ? t : "";
        } else if (le.type == EntryType::kFile) {
            // Read what is there instead of trusting the header's size up front: a damaged or
            // hostile header can claim gigabytes that the archive does not hold.
            char buf[1 << 16];
            la_ssize_t n;
            while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
                le.data.append(buf, static_cast<size_t>(n));
            }
            if (n < 0 || le.data.size() != le.size) {
                const char* why = n < 0 ? archive_error_string(a) : nullptr;
                return Err(where + ": " + le.path + ": only " + std::to_string(le.data.size()) +
                           " of " + std::to_string(le.size) + " bytes" +
                           (why != nullptr ? std::string(" (") + why + ")" : ""));
            }
        }
        out.push_back(std::move(le));
    }
    if (r != ARCHIVE_EOF) return Err(ArchiveError(a, where));
    return out;
}

// An initramfs that unpacks to more than this is not one (and would exhaust memory).
constexpr std::size_t kMaxDecompressedBytes = std::size_t{2} << 30;

// The whole output of the decompressor for the stream at the start of `in`.
Result<std::pair<std::string, std::string>> Decompress(std::string_view in,
                                                       const std::string& where) {
    ArchiveReader r;
    archive_read_support_filter_all(r.a);
    archive_read_support_format_raw(r.a);
    struct archive_entry* ae = nullptr;
    if (archive_read_open_memory(r.a, in.data(), in.size()) != ARCHIVE_OK ||
        archive_read_next_header(r.a, &ae) != ARCHIVE_OK) {
        return Err(ArchiveError(r.a, where));
    }
    std::string name = archive_filter_name(r.a, 0);
    std::string out;
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(r.a, buf, sizeof buf)) > 0) {
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > kMaxDecompressedBytes) {
            return Err(where + ": decompresses to more than " +
                       std::to_string(kMaxDecompressedBytes >> 20) + " MiB");
        }
    }
    if (n < 0) return Err(ArchiveError(r.a, where));
    return std::pair{name, std::move(out)};
}

// The archives in `bytes` as the kernel's initramfs unpacker takes them: NUL padding skipped,
// an uncompressed cpio archive read up to its trailer and the next one looked for after it, a
// compressed stream decompressed and its contents taken the same way (libarchive does not say
// where a compressed stream ends, so, as lsinitramfs does, it runs to the end of the file).
Result<void> ReadArchivesIn(std::string_view bytes, uint64_t base, const std::string& compression,
                            const std::string& path, std::vector<ListedArchive>& out) {
    std::size_t pos = 0;
    while (pos < bytes.size()) {
        if (bytes[pos] == '\0') {
            ++pos;
            continue;
        }
        uint64_t offset = base + (compression == "none" ? pos : 0);
        std::string where = path + " (archive at byte " + std::to_string(offset) + ")";
        std::string_view rest = bytes.substr(pos);
        if (!rest.starts_with("07070")) {
            if (compression != "none") return Err(where + ": not a cpio archive");
            auto [name, plain] = PEINIT_TRY(Decompress(rest, where));
            if (name == "none") return Err(where + ": neither a cpio archive nor compressed");
            PEINIT_TRY(ReadArchivesIn(plain, base + pos, name, path, out));
            return Ok();
        }
        ArchiveReader r;
        archive_read_support_format_cpio(r.a);
        if (archive_read_open_memory(r.a, rest.data(), rest.size()) != ARCHIVE_OK) {
            return Err(ArchiveError(r.a, where));
        }
        ListedArchive archive{offset, compression, PEINIT_TRY(ReadEntries(r.a, where))};
        // What the cpio reader consumed, trailer included: the next archive starts after it.
        auto consumed = archive_filter_bytes(r.a, 0);
        if (consumed <= 0) return Err(where + ": empty archive");
        pos += static_cast<std::size_t>(consumed);
        out.push_back(std::move(archive));
    }
    return Ok();
}

}  // namespace

Result<std::vector<ListedArchive>> ReadCpioArchives(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return ErrnoErr(path);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) return ErrnoErr("read " + path);
    std::vector<ListedArchive> out;
    PEINIT_TRY(ReadArchivesIn(bytes, 0, "none", path, out));
    if (out.empty()) return Err(path + ": no cpio archive");
    return out;
}

Result<std::vector<ListedEntry>> ReadCpio(const std::string& path) {
    std::vector<ListedEntry> out;
    for (auto& archive : PEINIT_TRY(ReadCpioArchives(path))) {
        for (auto& e : archive.entries) out.push_back(std::move(e));
    }
    return out;
}

}  // namespace peinit::image
