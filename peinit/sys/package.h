#pragma once

// Signed module packages: verification for peinit, creation and signing for the
// peinit-pkg tool. The format is specified in peinit/sys/PACKAGE.md.
//
// The security property this API is shaped around: the bytes that were verified are the bytes
// that get loaded. A package is read into memory once (ReadFileOnce, or ReadFileSealed at boot:
// a sealed memfd nobody can change) and that buffer is owned by
// the package object from then on: members are views into it, never copies, and never re-read
// from a path an attacker might swap. A module's bytes are handed out (VerifiedFile) only after
// their SHA-256 matched the signed manifest; the loader hands those bytes to the kernel (through
// a sealed memfd, package_memfd.h, or init_module) without opening anything again.
//
// Two ways to verify:
// - OpenPackage checks everything but the payload hashes at once (container, signature,
//   manifest, kernel release, the file set, order and sizes) and hashes members on request
//   (SignedPackage::Verify): the boot hashes only what it is about to load. A member whose hash
//   does not match rejects the whole package from then on (nothing more of it is handed out).
// - VerifyPackage does all of it, every hash included, and returns a VerifiedPackage.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/sys/package_crypto.h"
#include "peinit/sys/package_format.h"

namespace peinit {

class SignedPackage;
class VerifiedPackage;

// Reads a whole regular file into memory with one open and bounded reads (more than
// `max_bytes` is an error, as is anything but a regular file). Used for packages so that the
// bytes checked are never re-read from a path an attacker might swap.
Result<std::vector<std::byte>> ReadFileOnce(const std::filesystem::path& path,
                                            std::size_t max_bytes = kMaxPackageBytes);

// Bytes a package object owns: a heap buffer, a read-only mapping of a sealed memfd that holds
// a copy of a file (ReadFileSealed), or a read-only mapping of a file on a read-only mount
// (MapReadOnlyMountFile). Either way nothing can change them. Move-only.
class PackageBytes {
  public:
    PackageBytes() = default;
    explicit PackageBytes(std::vector<std::byte> heap) : heap_(std::move(heap)) {}
    PackageBytes(PackageBytes&& other) noexcept;
    PackageBytes& operator=(PackageBytes&& other) noexcept;
    PackageBytes(const PackageBytes&) = delete;
    PackageBytes& operator=(const PackageBytes&) = delete;
    ~PackageBytes();

    std::span<const std::byte> span() const {
        return map_ != nullptr ? std::span(static_cast<const std::byte*>(map_), map_len_)
                               : std::span<const std::byte>(heap_);
    }
    // The file's own pages, mapped where they are (MapReadOnlyMountFile): no byte was copied.
    bool in_place() const { return in_place_; }

  private:
    friend Result<PackageBytes> ReadFileSealed(const std::filesystem::path&, std::size_t);
    friend Result<PackageBytes> MapReadOnlyMountFile(const std::filesystem::path&, std::size_t);
    std::vector<std::byte> heap_;
    void* map_ = nullptr;
    std::size_t map_len_ = 0;
    bool in_place_ = false;
};

// ReadFileOnce for the boot: the file is copied once, by the kernel (sendfile), into an
// anonymous memfd that is then sealed against every change and mapped read-only; no page is
// zeroed or copied in user space, which matters for packages of tens of megabytes on slow CPUs.
// The same limits and errors as ReadFileOnce.
Result<PackageBytes> ReadFileSealed(const std::filesystem::path& path,
                                    std::size_t max_bytes = kMaxPackageBytes);

// A package on a read-only mount (the sealed tree, peinit/core/sealed_tree.h; the boot's
// packages directory, which PID 1 makes a read-only bind mount of itself before reading it,
// MountPackagesReadOnly in peinit/modload/packages.h): the file mapped read-only in place,
// without a copy, and only when its mount is read-only (statvfs ST_RDONLY on the open
// descriptor) and the file has no other hard link (one elsewhere could be a writable path to
// the same bytes). Nothing can change such a file under the mapping (writing it fails with
// EROFS, remounting takes CAP_SYS_ADMIN, and a mount inherited into another user namespace is
// locked there), so the bytes hashed are still the bytes loaded, and a read touches only the
// pages it needs (the archive headers, the manifest and signature, the members it loads). A
// file on a writable mount is an error (ReadPackageFile copies it instead); the limits are
// ReadFileSealed's.
Result<PackageBytes> MapReadOnlyMountFile(const std::filesystem::path& path,
                                          std::size_t max_bytes = kMaxPackageBytes);

// How peinit reads a package it will load from: mapped in place where MapReadOnlyMountFile
// allows it, otherwise copied once into a sealed memfd (ReadFileSealed). Either way each byte
// of a module is copied at most once before init_module, and nobody can change the bytes
// hashed; PackageBytes::in_place() tells which way it went.
Result<PackageBytes> ReadPackageFile(const std::filesystem::path& path,
                                     std::size_t max_bytes = kMaxPackageBytes);

// One verified payload file: a view of the exact bytes whose SHA-256 matched the signed manifest.
// Valid as long as the package object it came from.
class VerifiedFile {
  public:
    const std::string& path() const { return path_; }                    // "modules/.../foo.ko"
    std::string module_name() const { return ModuleNameOfPath(path_); }  // "foo"
    const Sha256Digest& sha256() const { return sha256_; }
    std::span<const std::byte> bytes() const { return bytes_; }

  private:
    friend class SignedPackage;
    friend Result<SignedPackage> OpenPackage(PackageBytes&&, const TrustStore&,
                                             std::optional<std::string>);
    VerifiedFile() = default;
    std::string path_;
    Sha256Digest sha256_{};
    std::span<const std::byte> bytes_;
};

// The SHA-256 of one payload member of one package object, computed from that object's own bytes
// (SignedPackage::HashMember): the only digest SignedPackage::Check accepts, so a digest of equal
// bytes elsewhere can never stand in for the bytes that will be handed out.
class MemberHash {
  public:
    std::size_t index() const { return index_; }

  private:
    friend class SignedPackage;
    MemberHash() = default;
    std::size_t index_ = 0;
    const std::byte* data_ = nullptr;  // the bytes hashed: the member's own
    Sha256Digest digest_{};
};

// A package whose container, signature and manifest were checked, and whose payload hashes are
// checked on request. Owns the package bytes. Move-only; not thread-safe (callers serialise),
// except HashMember, which only reads bytes nothing changes.
class SignedPackage {
  public:
    SignedPackage(SignedPackage&&) = default;
    SignedPackage& operator=(SignedPackage&&) = default;
    SignedPackage(const SignedPackage&) = delete;
    SignedPackage& operator=(const SignedPackage&) = delete;

    const std::string& name() const { return name_; }
    const std::string& version() const { return version_; }
    const std::string& kernel_release() const { return kernel_release_; }
    // Fingerprint of the trusted key that signed the manifest.
    const std::string& signer() const { return signer_; }
    std::size_t size() const { return files_.size(); }  // payload files, in manifest order
    const std::string& path(std::size_t i) const { return files_[i].path_; }
    std::string module_name(std::size_t i) const { return files_[i].module_name(); }
    // Size of file i as the signed manifest gives it (its hash need not be checked yet).
    std::size_t file_size(std::size_t i) const { return files_[i].bytes_.size(); }
    // The file providing module `module_name` ('-' and '_' equivalent), or size().
    std::size_t IndexOfModule(std::string_view module_name) const;

    // Hashes the files `which` not hashed yet (on up to one thread per CPU). The first mismatch
    // (in the order given) rejects the package: the error is returned now and on every later
    // call, and Verified() hands out nothing more.
    Result<void> Verify(std::span<const std::size_t> which);
    Result<void> VerifyAll();
    // Verify split in two for callers that hash outside their lock (the boot's streamed checks,
    // PackageSet): HashMember computes the SHA-256 of file i's bytes and may run on any thread
    // at any time (it touches nothing Check or Verify change); Check compares it with the
    // manifest exactly as Verify does (a mismatch rejects the package, now and on every later
    // call). A hash of another package object's member is refused with an error.
    MemberHash HashMember(std::size_t i) const;
    Result<void> Check(const MemberHash& hash);
    // File i when its hash has been checked and the package is not rejected; else nullptr.
    const VerifiedFile* Verified(std::size_t i) const;
    std::size_t verified_count() const;
    // Why a hash check rejected the package (nullopt while none has).
    const std::optional<Error>& rejection() const { return rejected_; }

  private:
    friend Result<SignedPackage> OpenPackage(PackageBytes&&, const TrustStore&,
                                             std::optional<std::string>);
    friend class VerifiedPackage;
    SignedPackage() = default;
    PackageBytes buffer_;  // the package file; files_ are views into it
    std::string name_;
    std::string version_;
    std::string kernel_release_;
    std::string signer_;
    std::vector<VerifiedFile> files_;
    std::vector<char> checked_;  // per file: its hash matched
    std::optional<Error> rejected_;
};

// Checks a package held in memory except for its payload hashes: container structure,
// signature by a key in `trusted`, manifest, target kernel release (when `kernel_release` is
// given), the payload's file set, order and sizes. Takes the bytes over on success only (on
// failure `bytes` is left as it was). Any failure rejects the whole package with a PackageReject
// reason (PackageRejectOf(error)).
Result<SignedPackage> OpenPackage(PackageBytes&& bytes, const TrustStore& trusted,
                                  std::optional<std::string> kernel_release);

// OpenPackage and every payload hash: nothing of a rejected package is returned.
Result<VerifiedPackage> VerifyPackage(std::vector<std::byte> bytes, const TrustStore& trusted,
                                      std::optional<std::string> kernel_release);
inline Result<VerifiedPackage> VerifyPackage(std::span<const std::byte> bytes,
                                             const TrustStore& trusted,
                                             std::optional<std::string> kernel_release);

// A package whose signature, manifest and every payload hash were checked. Move-only.
class VerifiedPackage {
  public:
    const std::string& name() const { return package_.name(); }
    const std::string& version() const { return package_.version(); }
    const std::string& kernel_release() const { return package_.kernel_release(); }
    const std::string& signer() const { return package_.signer(); }
    // In manifest order (sorted by path).
    const std::vector<VerifiedFile>& files() const { return package_.files_; }
    // The payload file providing module `module_name` ('-' and '_' equivalent), or nullptr.
    const VerifiedFile* FindModule(std::string_view module_name) const;

  private:
    friend Result<VerifiedPackage> VerifyPackage(std::vector<std::byte>, const TrustStore&,
                                                 std::optional<std::string>);
    explicit VerifiedPackage(SignedPackage package) : package_(std::move(package)) {}
    SignedPackage package_;
};

inline Result<VerifiedPackage> VerifyPackage(std::span<const std::byte> bytes,
                                             const TrustStore& trusted,
                                             std::optional<std::string> kernel_release) {
    return VerifyPackage(std::vector<std::byte>(bytes.begin(), bytes.end()), trusted,
                         std::move(kernel_release));
}

// A payload file for CreatePackage: its path inside the package ("modules/foo.ko") and bytes.
struct PackageInput {
    std::string path;
    std::vector<std::byte> bytes;
};

struct PackageSpec {
    std::string name;
    std::string version;
    std::string kernel_release;
    std::vector<PackageInput> files;  // any order; stored sorted by path
};

// Builds a package: manifest from `spec`, MANIFEST.sig when `key` is given (unsigned otherwise,
// which VerifyPackage rejects until `SignPackage` adds a signature). `mtime` is stamped on every
// member (pass SOURCE_DATE_EPOCH for reproducible output). Rejects invalid names and paths and
// duplicate paths with the same reasons the verifier would.
Result<std::vector<std::byte>> CreatePackage(const PackageSpec& spec, const SigningKey* key,
                                             std::int64_t mtime = 0);

// The MANIFEST.sig text for `manifest` (exact MANIFEST bytes) signed by `key`.
Result<std::string> SignManifest(std::span<const std::byte> manifest, const SigningKey& key);

// Adds or replaces the signature of a package. The package must pass every check except the
// signature first (structure, manifest, hashes): the tool never signs contents that do not
// match their manifest.
Result<std::vector<std::byte>> SignPackage(std::span<const std::byte> package,
                                           const SigningKey& key, std::int64_t mtime = 0);

// What `peinit-pkg list` shows: the manifest of a structurally valid package whose payload
// matches it, and the signature it carries (not checked against any trust store).
struct PackageInfo {
    Manifest manifest;
    std::optional<PackageSignature> signature;
};
Result<PackageInfo> InspectPackage(std::span<const std::byte> bytes);

// The modules a package says it carries, read WITHOUT verification: from its MANIFEST when that
// parses, else from its payload member names. Untrusted, for messages and bookkeeping only (why
// a module from a rejected package is not loaded); empty when even the container is bad.
std::vector<std::string> ClaimedModules(std::span<const std::byte> bytes);

}  // namespace peinit
