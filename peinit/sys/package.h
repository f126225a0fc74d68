#pragma once

// Signed module packages: verification for peinit, creation and signing for the
// peinit-pkg tool. The format is specified in peinit/sys/PACKAGE.md.
//
// The security property this API is shaped around: the bytes that were verified are the bytes
// that get loaded. A package is read into memory once (ReadFileOnce); VerifyPackage checks that
// buffer and copies each payload into a VerifiedPackage, whose bytes are the ones that were
// hashed; the loader hands those bytes to the kernel (through a sealed memfd, package_memfd.h,
// or init_module) without ever opening the package or a module by path again. A
// VerifiedPackage can only be made by VerifyPackage, so holding one means the checks passed.

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

class VerifiedPackage;

// Verifies a package held in memory: container structure, signature by a key in `trusted`,
// manifest, target kernel release (when `kernel_release` is given), and every file's size and
// SHA-256. Any failure rejects the whole package with a PackageReject reason
// (PackageRejectOf(error)); nothing of a rejected package is returned.
Result<VerifiedPackage> VerifyPackage(std::span<const std::byte> bytes, const TrustStore& trusted,
                                      std::optional<std::string> kernel_release);

// Reads a whole regular file into memory with one open and bounded reads (more than
// `max_bytes` is an error, as is anything but a regular file). Used for packages so that the
// bytes checked are never re-read from a path an attacker might swap.
Result<std::vector<std::byte>> ReadFileOnce(const std::filesystem::path& path,
                                            std::size_t max_bytes = kMaxPackageBytes);

// One verified payload file. Its bytes are the exact bytes whose SHA-256 matched the signed
// manifest.
class VerifiedFile {
  public:
    const std::string& path() const { return path_; }                    // "modules/.../foo.ko"
    std::string module_name() const { return ModuleNameOfPath(path_); }  // "foo"
    const Sha256Digest& sha256() const { return sha256_; }
    std::span<const std::byte> bytes() const { return bytes_; }

  private:
    friend Result<VerifiedPackage> VerifyPackage(std::span<const std::byte>, const TrustStore&,
                                                 std::optional<std::string>);
    VerifiedFile() = default;
    std::string path_;
    Sha256Digest sha256_{};
    std::vector<std::byte> bytes_;
};

// A package whose signature, manifest and every payload hash were checked. Move-only: it owns
// the payload bytes, and copies of them have no use.
class VerifiedPackage {
  public:
    VerifiedPackage(VerifiedPackage&&) = default;
    VerifiedPackage& operator=(VerifiedPackage&&) = default;
    VerifiedPackage(const VerifiedPackage&) = delete;
    VerifiedPackage& operator=(const VerifiedPackage&) = delete;

    const std::string& name() const { return name_; }
    const std::string& version() const { return version_; }
    const std::string& kernel_release() const { return kernel_release_; }
    // Fingerprint of the trusted key that signed the manifest.
    const std::string& signer() const { return signer_; }
    // In manifest order (sorted by path).
    const std::vector<VerifiedFile>& files() const { return files_; }
    // The payload file providing module `module_name` ('-' and '_' equivalent), or nullptr.
    const VerifiedFile* FindModule(std::string_view module_name) const;

  private:
    friend Result<VerifiedPackage> VerifyPackage(std::span<const std::byte>, const TrustStore&,
                                                 std::optional<std::string>);
    VerifiedPackage() = default;
    std::string name_;
    std::string version_;
    std::string kernel_release_;
    std::string signer_;
    std::vector<VerifiedFile> files_;
};

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
