#pragma once

// Signed module packages in an image (initramfs/IMAGE.md, "Packages and keys"; format in
// peinit/sys/PACKAGE.md). The builder never ships a loose .ko: every module of the image's
// module set is packed into the image's own package(s), signed at build time with the image
// signing key, whose public half is shipped as a trusted key. Pre-built packages named by the
// definition are checked against the image's trust store and kernel release and shipped as
// they are.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "initramfs/image_definition.h"
#include "peinit/core/result.h"
#include "peinit/sys/package.h"
#include "peinit/sys/package_crypto.h"

namespace peinit::image {

// Fixed image locations (shared with peinit at boot: BootPaths::PackagesDir/TrustedKeysDir).
inline constexpr const char* kImagePackagesDir = "/usr/lib/peinit/packages";
inline constexpr const char* kImageKeyFile = "image.pub";  // in kImageKeysDir

// ${PEINIT_CACHE:-$HOME/.cache/peinit}/image-keys: where the build-local signing key lives.
std::string DefaultImageKeyDir();

// The key that signs the image's package: `signing_key` of the definition when set (refused when
// group or others can access it), else `key_dir`/image-signing.key, generated on first use (mode
// 0600 in a 0700 directory; written to a temporary file and linked into place, so concurrent
// builds agree on one key). `origin` says which, for messages.
struct ImageSigningKey {
    SigningKey key;
    std::string origin;
};
Result<ImageSigningKey> LoadImageSigningKey(const ImageDefinition& def, const std::string& key_dir);

// A module to pack: its path relative to the modules directory and the host file to read.
struct PackModule {
    std::string rel_path;   // "kernel/fs/ext4/ext4.ko", "extra/peinit_test_fail.ko"
    std::string host_path;  // the file (symlinks followed)
};

// One file for /usr/lib/peinit/packages.
struct PackageFile {
    std::string file_name;  // "image.pkg"
    std::vector<std::byte> bytes;
    std::vector<std::string> modules;  // module names it provides (or claims to, when rejected)
};

// Packs `modules` into signed packages for kernel release `kver`: payload paths
// "modules/<rel_path>", name `name` (sanitized), version = the first 16 hex digits of a SHA-256
// over the payload (paths and hashes), every member stamped `mtime`. One package ("image.pkg")
// unless the format's limits (files per package, package size) force a split ("image-2.pkg",
// ...). Deterministic: same inputs and key, same bytes.
Result<std::vector<PackageFile>> PackImageModules(const std::string& name, const std::string& kver,
                                                  const std::vector<PackModule>& modules,
                                                  const SigningKey& key, int64_t mtime);

// A pre-built package after its build-time check.
struct CheckedPackage {
    PackageFile file;  // bytes as read, shipped unchanged
    bool verified = false;
    std::string reason;  // the verifier's reason when it did not verify
};

// Reads the package once and verifies it against `trusted` and `kver`; the result must match
// the entry's `expect`, otherwise the error says what happened ("image.toml:12: x.pkg does not
// verify: hash-mismatch: ..." / "... verifies, but expect = \"rejected\"").
Result<CheckedPackage> CheckExtraPackage(const ExtraPackage& entry, const std::string& file,
                                         const TrustStore& trusted, const std::string& kver);

}  // namespace peinit::image
