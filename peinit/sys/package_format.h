#pragma once

// The text members of a signed module package (MANIFEST and MANIFEST.sig), the limits every
// reader enforces, and the rejection reasons. The format itself is specified in
// peinit/sys/PACKAGE.md; this header is its executable form.
//
// Both text members have exactly one valid spelling for a given content (parse then serialize
// gives back the same bytes, and the parsers check that), so there is nothing an attacker can
// vary in them without changing the signed bytes.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"

namespace peinit {

inline constexpr int kPackageFormatVersion = 1;

inline constexpr std::string_view kManifestMember = "MANIFEST";
inline constexpr std::string_view kSignatureMember = "MANIFEST.sig";
inline constexpr std::string_view kPayloadPrefix = "modules/";
// Payload files end in .ko, or .ko.gz / .ko.xz / .ko.zst (peinit/core/module_file.h).

// Limits. A package is read whole into memory, so every size is capped before anything is
// allocated for it; the caps are far above what a module package needs (the largest Debian 6.1
// module is ~12 MiB) and far below what would hurt an initramfs.
inline constexpr std::size_t kMaxPackageBytes = 256u << 20;
inline constexpr std::size_t kMaxPayloadFileBytes = 64u << 20;
inline constexpr std::size_t kMaxManifestBytes = 256u << 10;
inline constexpr std::size_t kMaxSignatureBytes = 1024;
inline constexpr std::size_t kMaxPackageFiles = 1024;
inline constexpr std::size_t kMaxPathBytes = 200;  // fits ustar's 155+100 split with room
inline constexpr std::size_t kMaxFieldBytes = 64;  // name, version, kernel release

// Why a package was rejected. Every check has its own reason so callers and tests can tell a
// tampered payload from an untrusted signer from a malformed container.
enum class PackageReject {
    kEmpty,                 // zero bytes, an archive with no members, or a manifest with no files
    kTooLarge,              // a size or count limit above was exceeded
    kNotAPackage,           // not a tar archive we accept (garbage, damaged header, compression)
    kTruncated,             // the archive ends before its end-of-archive marker
    kTrailingData,          // bytes after the end-of-archive marker
    kBadLayout,             // MANIFEST not first, MANIFEST.sig not second, payload out of order
    kNotRegularFile,        // directory, symlink, hard link, device, fifo, sparse file
    kBadPath,               // absolute, "..", ".", empty component, odd characters, wrong place
    kDuplicatePath,         // the same member path twice
    kUnsigned,              // no MANIFEST.sig member
    kMalformedSignature,    // MANIFEST.sig does not parse
    kUntrustedKey,          // signed by a key not in the trust store
    kBadSignature,          // the Ed25519 signature does not verify over MANIFEST
    kMalformedManifest,     // MANIFEST does not parse (or is not in canonical form)
    kUnknownFormatVersion,  // MANIFEST declares a format version we do not know
    kUnknownField,          // MANIFEST has a field we do not know
    kWrongKernelRelease,    // built for another kernel than the verifier was told to expect
    kExtraFile,             // a payload member the manifest does not list
    kMissingFile,           // a file the manifest lists is not in the archive
    kSizeMismatch,          // a payload member's size differs from the manifest
    kHashMismatch,          // a payload member's SHA-256 differs from the manifest
    kModuleNameMismatch,    // a member's module image names another module than its file name
};

// The stable slug of a reason ("hash-mismatch"); rejection messages start with "<slug>: ".
std::string_view PackageRejectSlug(PackageReject reason);

// Builds the error for a rejection: message "<slug>: <detail>".
Unexpected Reject(PackageReject reason, std::string detail);

// The reason of an error made by Reject, or nullopt for other errors (I/O, allocation, ...).
// Call it on the error as returned, before adding context.
std::optional<PackageReject> PackageRejectOf(const Error& error);

using Sha256Digest = std::array<std::byte, 32>;
using Ed25519Signature = std::array<std::byte, 64>;

struct ManifestFile {
    std::string path;  // "modules/<...>.ko"
    std::uint64_t size = 0;
    Sha256Digest sha256{};
};

struct Manifest {
    std::string name;
    std::string version;
    std::string kernel_release;
    std::vector<ManifestFile> files;  // sorted by path (bytewise), unique
};

// The canonical MANIFEST text. `files` must already be sorted and unique (CreatePackage does it).
std::string SerializeManifest(const Manifest& manifest);

// Parses MANIFEST strictly: known format version, known fields in their fixed order, valid
// values, sorted unique paths, at least one file, canonical spelling.
Result<Manifest> ParseManifest(std::string_view text);

struct PackageSignature {
    std::string key_fingerprint;  // lowercase hex SHA-256 of the raw 32-byte Ed25519 public key
    Ed25519Signature value{};
};

std::string SerializeSignature(const PackageSignature& signature);
Result<PackageSignature> ParseSignature(std::string_view text);

// Checks a payload path: "modules/" + one or more components + ".ko", components made of
// [A-Za-z0-9._+-] and not "." or "..", at most kMaxPathBytes. Rejects with kBadPath.
Result<void> ValidatePayloadPath(std::string_view path);

// Checks any archive member path (the generic rules of ValidatePayloadPath without the
// location rule): relative, no "."/".."/empty components, restricted characters, bounded.
Result<void> ValidateMemberPath(std::string_view path);

// The module name a payload file provides: basename without ".ko", '-' folded to '_' (as the
// kernel and kmod name modules).
std::string ModuleNameOfPath(std::string_view path);

// Lowercase hex; HexDecode accepts lowercase hex only (one spelling per value).
std::string HexEncode(const std::byte* data, std::size_t size);
template <std::size_t N>
std::string HexEncode(const std::array<std::byte, N>& data) {
    return HexEncode(data.data(), N);
}
bool HexDecode(std::string_view hex, std::byte* out, std::size_t out_size);

}  // namespace peinit
