#include "peinit/sys/package.h"

#include "peinit/sys/module_decompress.h"
#include "peinit/sys/module_elf.h"

#include "peinit/core/module_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>

#include "peinit/sys/package_archive.h"
#include "peinit/sys/package_internal.h"

namespace peinit {
namespace detail {

std::string_view AsText(std::span<const std::byte> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::vector<std::byte> AsBytes(std::string_view text) {
    const auto* p = reinterpret_cast<const std::byte*>(text.data());
    return {p, p + text.size()};
}

Result<Layout> SplitLayout(const std::vector<ArchiveEntry>& members) {
    Layout layout;
    if (members.front().path != kManifestMember) {
        return Reject(PackageReject::kBadLayout,
                      "first member is \"" + members.front().path + "\", not MANIFEST");
    }
    layout.manifest = &members[0];
    std::size_t first_payload = 1;
    if (members.size() > 1 && members[1].path == kSignatureMember) {
        layout.signature = &members[1];
        first_payload = 2;
    }
    layout.payload = std::span(members).subspan(first_payload);
    for (const auto& m : layout.payload) {
        if (m.path == kSignatureMember) {
            return Reject(PackageReject::kBadLayout, "MANIFEST.sig must be the second member");
        }
        PEINIT_TRY(ValidatePayloadPath(m.path));
    }
    if (layout.manifest->data.size() > kMaxManifestBytes) {
        return Reject(PackageReject::kTooLarge,
                      "MANIFEST is larger than " + std::to_string(kMaxManifestBytes) + " bytes");
    }
    return layout;
}

// The payload members against the manifest: same set of files, in manifest order, with the same
// sizes. Each mismatch has its own reason, checked in that order.
Result<void> CheckPayloadLayout(const Manifest& manifest, std::span<const ArchiveEntry> payload) {
    // Container paths are unique (ReadArchive) and manifest paths are sorted and unique
    // (ParseManifest), so positions identify files.
    std::vector<std::size_t> index_of;  // manifest index of each payload member
    std::vector<bool> present(manifest.files.size(), false);
    for (const auto& member : payload) {
        auto it = std::lower_bound(
            manifest.files.begin(), manifest.files.end(), member.path,
            [](const ManifestFile& f, const std::string& path) { return f.path < path; });
        if (it == manifest.files.end() || it->path != member.path) {
            return Reject(PackageReject::kExtraFile,
                          member.path + " is in the archive but not in the manifest");
        }
        auto index = static_cast<std::size_t>(it - manifest.files.begin());
        index_of.push_back(index);
        present[index] = true;
    }
    for (std::size_t i = 0; i < manifest.files.size(); ++i) {
        if (!present[i]) {
            return Reject(PackageReject::kMissingFile,
                          manifest.files[i].path + " is in the manifest but not in the archive");
        }
    }
    for (std::size_t i = 0; i < payload.size(); ++i) {
        if (index_of[i] != i) {
            return Reject(PackageReject::kBadLayout, payload[i].path + " is out of manifest order");
        }
    }
    for (std::size_t i = 0; i < payload.size(); ++i) {
        if (payload[i].data.size() != manifest.files[i].size) {
            return Reject(PackageReject::kSizeMismatch,
                          payload[i].path + " is " + std::to_string(payload[i].data.size()) +
                              " bytes, the manifest says " + std::to_string(manifest.files[i].size));
        }
    }
    return Ok();
}

// Each thread takes the next unhashed item, largest first (one large module then does not start
// last and keep the others waiting); the result is the same as hashing in order.
std::vector<Sha256Digest> Sha256OfEach(std::span<const std::span<const std::byte>> data,
                                       unsigned max_threads) {
    std::vector<Sha256Digest> digests(data.size());
    std::vector<std::size_t> order(data.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return data[a].size() > data[b].size(); });
    std::atomic<std::size_t> next{0};
    auto work = [&] {
        for (std::size_t k; (k = next.fetch_add(1)) < order.size();) {
            digests[order[k]] = Sha256Of(data[order[k]]);
        }
    };
    std::size_t bytes = 0;
    for (const auto& d : data) bytes += d.size();
    unsigned threads =
        std::min<unsigned>({std::max(1u, std::thread::hardware_concurrency()),
                            std::max(1u, max_threads), static_cast<unsigned>(data.size())});
    if (bytes < (1u << 20)) threads = 1;  // not worth a thread
    std::vector<std::thread> helpers;
    for (unsigned t = 1; t < threads; ++t) {
        try {
            helpers.emplace_back(work);
        } catch (const std::system_error&) {
            break;  // no thread: the calling thread hashes the rest
        }
    }
    work();
    for (auto& h : helpers) h.join();
    return digests;
}

Result<void> CompareDigests(std::span<const HashCheck> checks,
                            std::span<const Sha256Digest> digests) {
    for (std::size_t k = 0; k < checks.size(); ++k) {
        if (digests[k] != *checks[k].expected) {
            return Reject(PackageReject::kHashMismatch,
                          *checks[k].path + " has SHA-256 " + HexEncode(digests[k]) +
                              ", the manifest says " + HexEncode(*checks[k].expected));
        }
    }
    return Ok();
}

// The boot waits for this before its first load (a package is tens of megabytes).
Result<void> CheckHashes(std::span<const HashCheck> checks) {
    std::vector<std::span<const std::byte>> data;
    data.reserve(checks.size());
    for (const auto& c : checks) data.push_back(c.data);
    return CompareDigests(checks, Sha256OfEach(data));
}

Result<void> CheckPayload(const Manifest& manifest, std::span<const ArchiveEntry> payload) {
    PEINIT_TRY(CheckPayloadLayout(manifest, payload));
    std::vector<HashCheck> checks;
    checks.reserve(payload.size());
    for (std::size_t i = 0; i < payload.size(); ++i) {
        checks.push_back({payload[i].data, &manifest.files[i].sha256, &payload[i].path});
    }
    return CheckHashes(checks);
}

}  // namespace detail

using detail::AsBytes;
using detail::AsText;
using detail::CheckHashes;
using detail::CheckPayload;
using detail::CheckPayloadLayout;
using detail::Layout;
using detail::SplitLayout;

namespace {

// An open descriptor, closed on destruction.
struct OwnedFd {
    int fd = -1;
    OwnedFd() = default;
    explicit OwnedFd(int f) : fd(f) {}
    OwnedFd(const OwnedFd&) = delete;
    OwnedFd& operator=(const OwnedFd&) = delete;
    ~OwnedFd() {
        if (fd >= 0) ::close(fd);
    }
};

// Opens `path` for reading once: a regular file of at most `max_bytes` (its size now: it may
// still change, so readers stop at EOF or at the limit).
Result<std::size_t> OpenBounded(const std::filesystem::path& path, std::size_t max_bytes,
                                OwnedFd& out) {
    out.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (out.fd < 0) return ErrnoErr(path.string());
    struct stat st;
    if (::fstat(out.fd, &st) != 0) return ErrnoErr(path.string());
    if (!S_ISREG(st.st_mode)) return Err(path.string() + ": not a regular file");
    if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
        return Err(path.string() + ": " + std::to_string(st.st_size) + " bytes (limit " +
                   std::to_string(max_bytes) + ")");
    }
    return static_cast<std::size_t>(st.st_size);
}

}  // namespace

Result<std::vector<std::byte>> ReadFileOnce(const std::filesystem::path& path,
                                            std::size_t max_bytes) {
    OwnedFd file;
    const std::size_t size = PEINIT_TRY(OpenBounded(path, max_bytes, file));
    const int fd = file.fd;
    std::vector<std::byte> data(size);
    std::size_t done = 0;
    // The size may change under us; read until EOF but never past the limit.
    while (true) {
        if (done == data.size()) {
            // Full: one byte more tells EOF from growth without doubling the buffer.
            std::byte probe;
            ssize_t n = ::read(fd, &probe, 1);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return ErrnoErr(path.string());
            if (n == 0) break;
            if (data.size() >= max_bytes) {
                return Err(path.string() + ": grew past the limit of " + std::to_string(max_bytes) +
                           " bytes while being read");
            }
            data.push_back(probe);
            ++done;
            data.resize(std::min(std::max<std::size_t>(data.size() * 2, 4096), max_bytes + 1));
            continue;
        }
        ssize_t n = ::read(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoErr(path.string());
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    if (done > max_bytes) {
        return Err(path.string() + ": grew past the limit of " + std::to_string(max_bytes) +
                   " bytes while being read");
    }
    data.resize(done);
    return data;
}

std::size_t SignedPackage::IndexOfModule(std::string_view module_name) const {
    std::string wanted(module_name);
    std::replace(wanted.begin(), wanted.end(), '-', '_');
    for (std::size_t i = 0; i < files_.size(); ++i) {
        if (files_[i].module_name() == wanted) return i;
    }
    return files_.size();
}

Result<void> SignedPackage::Verify(std::span<const std::size_t> which) {
    if (rejected_) return *rejected_;
    std::vector<std::size_t> todo;
    for (std::size_t i : which) {
        if (i < files_.size() && !checked_[i]) todo.push_back(i);
    }
    if (todo.empty()) return Ok();
    std::vector<std::span<const std::byte>> data;
    std::vector<detail::HashCheck> checks;
    for (std::size_t i : todo) {
        data.push_back(files_[i].bytes_);
        checks.push_back({files_[i].bytes_, &files_[i].sha256_, &files_[i].path_});
    }
    if (auto r = detail::CompareDigests(checks, detail::Sha256OfEach(data)); !r) {
        rejected_ = r.error();
        return r.error();
    }
    for (std::size_t i : todo) checked_[i] = 1;
    return Ok();
}

MemberHash SignedPackage::HashMember(std::size_t i) const {
    MemberHash hash;
    hash.index_ = i;
    if (i >= files_.size()) return hash;
    hash.data_ = files_[i].bytes_.data();
    hash.digest_ = Sha256Of(files_[i].bytes_);
    return hash;
}

Result<void> SignedPackage::Check(const MemberHash& hash) {
    if (rejected_) return *rejected_;
    const std::size_t i = hash.index_;
    if (i >= files_.size() || hash.data_ != files_[i].bytes_.data()) {
        return Err("member hash of another package object");
    }
    if (checked_[i]) return Ok();
    const detail::HashCheck check[] = {{files_[i].bytes_, &files_[i].sha256_, &files_[i].path_}};
    const Sha256Digest digest[] = {hash.digest_};
    if (auto r = detail::CompareDigests(check, digest); !r) {
        rejected_ = r.error();
        return r.error();
    }
    checked_[i] = 1;
    return Ok();
}

Result<void> SignedPackage::VerifyAll() {
    std::vector<std::size_t> all(files_.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    return Verify(all);
}

const VerifiedFile* SignedPackage::Verified(std::size_t i) const {
    if (rejected_ || i >= files_.size() || !checked_[i]) return nullptr;
    return &files_[i];
}

std::size_t SignedPackage::verified_count() const {
    return static_cast<std::size_t>(std::count(checked_.begin(), checked_.end(), 1));
}

PackageBytes::PackageBytes(PackageBytes&& other) noexcept
    : heap_(std::move(other.heap_)), map_(other.map_), map_len_(other.map_len_),
      in_place_(other.in_place_) {
    other.map_ = nullptr;
    other.map_len_ = 0;
}

PackageBytes& PackageBytes::operator=(PackageBytes&& other) noexcept {
    if (this != &other) {
        if (map_ != nullptr) ::munmap(map_, map_len_);
        heap_ = std::move(other.heap_);
        map_ = other.map_;
        map_len_ = other.map_len_;
        in_place_ = other.in_place_;
        other.map_ = nullptr;
        other.map_len_ = 0;
    }
    return *this;
}

PackageBytes::~PackageBytes() {
    if (map_ != nullptr) ::munmap(map_, map_len_);
}

Result<PackageBytes> ReadFileSealed(const std::filesystem::path& path, std::size_t max_bytes) {
    OwnedFd file;
    PEINIT_TRY(OpenBounded(path, max_bytes, file));
    const int in = file.fd;
    OwnedFd mem(::memfd_create("peinit-package", MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (mem.fd < 0) return ErrnoErr("memfd_create");
    const int memfd = mem.fd;
    // Until EOF (the size may change under us), never past the limit.
    std::size_t done = 0;
    while (true) {
        ssize_t n = ::sendfile(memfd, in, nullptr, max_bytes + 1 - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return ErrnoErr(path.string() + ": copy into a memfd");
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
        if (done > max_bytes) {
            return Err(path.string() + ": grew past the limit of " + std::to_string(max_bytes) +
                       " bytes while being read");
        }
    }
    if (::fcntl(memfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) !=
        0) {
        return ErrnoErr("seal the package memfd");
    }
    PackageBytes bytes;
    if (done == 0) return bytes;
    void* map = ::mmap(nullptr, done, PROT_READ, MAP_SHARED | MAP_POPULATE, memfd, 0);
    if (map == MAP_FAILED) return ErrnoErr("mmap the package memfd");
    bytes.map_ = map;
    bytes.map_len_ = done;
    return bytes;
}

Result<PackageBytes> MapReadOnlyMountFile(const std::filesystem::path& path,
                                          std::size_t max_bytes) {
    OwnedFd file;
    const std::size_t size = PEINIT_TRY(OpenBounded(path, max_bytes, file));
    struct statvfs mount {};
    if (::fstatvfs(file.fd, &mount) != 0) return ErrnoErr(path.string() + ": statvfs");
    if ((mount.f_flag & ST_RDONLY) == 0) {
        return Err(path.string() + ": not on a read-only mount, not mapped in place");
    }
    struct stat st {};
    if (::fstat(file.fd, &st) != 0) return ErrnoErr(path.string() + ": stat");
    if (st.st_nlink != 1) {
        return Err(path.string() + ": " + std::to_string(st.st_nlink) +
                   " hard links (another may be writable), not mapped in place");
    }
    PackageBytes bytes;
    bytes.in_place_ = true;
    if (size == 0) return bytes;
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, file.fd, 0);
    if (map == MAP_FAILED) return ErrnoErr(path.string() + ": mmap");
    bytes.map_ = map;
    bytes.map_len_ = size;
    return bytes;
}

Result<PackageBytes> ReadPackageFile(const std::filesystem::path& path, std::size_t max_bytes) {
    auto mapped = MapReadOnlyMountFile(path, max_bytes);
    if (mapped) return mapped;
    return ReadFileSealed(path, max_bytes);
}

const VerifiedFile* VerifiedPackage::FindModule(std::string_view module_name) const {
    std::size_t i = package_.IndexOfModule(module_name);
    return i < package_.size() ? &package_.files_[i] : nullptr;
}

Result<SignedPackage> OpenPackage(PackageBytes&& bytes, const TrustStore& trusted,
                                  std::optional<std::string> kernel_release) {
    std::vector<ArchiveEntry> members = PEINIT_TRY(ReadArchive(bytes.span()));
    Layout layout = PEINIT_TRY(SplitLayout(members));

    // Authenticate MANIFEST before parsing it: nothing an untrusted party wrote is interpreted
    // beyond the container and the fixed-layout signature member.
    if (layout.signature == nullptr) {
        return Reject(PackageReject::kUnsigned, "the package has no MANIFEST.sig");
    }
    std::string signer = PEINIT_TRY(VerifySignatureText(
        trusted, layout.manifest->data, AsText(layout.signature->data), "MANIFEST"));

    Manifest manifest = PEINIT_TRY(ParseManifest(AsText(layout.manifest->data)));
    if (kernel_release && *kernel_release != manifest.kernel_release) {
        return Reject(
            PackageReject::kWrongKernelRelease,
            "built for " + manifest.kernel_release + ", this kernel is " + *kernel_release);
    }
    PEINIT_TRY(CheckPayloadLayout(manifest, layout.payload));

    SignedPackage package;
    package.name_ = std::move(manifest.name);
    package.version_ = std::move(manifest.version);
    package.kernel_release_ = std::move(manifest.kernel_release);
    package.signer_ = std::move(signer);
    package.files_.reserve(layout.payload.size());
    for (std::size_t i = 0; i < layout.payload.size(); ++i) {
        VerifiedFile file;
        file.path_ = layout.payload[i].path;
        file.sha256_ = manifest.files[i].sha256;
        file.bytes_ = layout.payload[i].data;  // a view into `bytes`
        package.files_.push_back(std::move(file));
    }
    package.checked_.assign(package.files_.size(), 0);
    // Moving keeps the heap buffer or the mapping where it is, so the views stay valid.
    package.buffer_ = std::move(bytes);
    return package;
}

Result<VerifiedPackage> VerifyPackage(std::vector<std::byte> bytes, const TrustStore& trusted,
                                      std::optional<std::string> kernel_release) {
    SignedPackage package = PEINIT_TRY(
        OpenPackage(PackageBytes(std::move(bytes)), trusted, std::move(kernel_release)));
    PEINIT_TRY(package.VerifyAll());
    // Every member holds the module its file name says (decompressed first when compressed;
    // one that does not decompress is the loader's error to report).
    for (std::size_t i = 0; i < package.size(); ++i) {
        const VerifiedFile* f = package.Verified(i);
        if (auto image = ModuleImageOf(f->path(), f->bytes())) {
            PEINIT_TRY(CheckModuleName(image->bytes(), f->module_name(), f->path()));
        }
    }
    return VerifiedPackage(std::move(package));
}

std::vector<std::string> ClaimedModules(std::span<const std::byte> bytes) {
    std::vector<std::string> out;
    auto members = ReadArchive(bytes);
    if (!members) return out;
    for (const auto& m : *members) {
        if (m.path != kManifestMember) continue;
        std::string_view text(reinterpret_cast<const char*>(m.data.data()), m.data.size());
        if (auto manifest = ParseManifest(text)) {
            for (const auto& f : manifest->files) out.push_back(ModuleNameOfPath(f.path));
            return out;
        }
    }
    for (const auto& m : *members) {
        std::string_view p = m.path;
        if (p.starts_with(kPayloadPrefix) && ModuleCompressionOf(p.substr(p.rfind('/') + 1))) {
            out.push_back(ModuleNameOfPath(p));
        }
    }
    return out;
}

Result<PackageInfo> InspectPackage(std::span<const std::byte> bytes) {
    std::vector<ArchiveEntry> members = PEINIT_TRY(ReadArchive(bytes));
    Layout layout = PEINIT_TRY(SplitLayout(members));
    PackageInfo info;
    if (layout.signature != nullptr) {
        info.signature = PEINIT_TRY(ParseSignature(AsText(layout.signature->data)));
    }
    info.manifest = PEINIT_TRY(ParseManifest(AsText(layout.manifest->data)));
    PEINIT_TRY(CheckPayload(info.manifest, layout.payload));
    return info;
}

}  // namespace peinit
