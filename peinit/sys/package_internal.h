#pragma once

// Helpers shared by the package reader (package.cpp) and writer (package_write.cpp). The writer
// lives in its own file so that PID 1, which only verifies packages, links none of libarchive's
// writers (see peinit/CMakeLists.txt).

#include <span>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/sys/package_archive.h"
#include "peinit/sys/package_format.h"

namespace peinit::detail {

std::string_view AsText(std::span<const std::byte> bytes);
std::vector<std::byte> AsBytes(std::string_view text);

// The members of a package sorted into their roles, after the layout rules of PACKAGE.md:
// MANIFEST first, MANIFEST.sig second when present, then payload under modules/.
struct Layout {
    const ArchiveEntry* manifest = nullptr;
    const ArchiveEntry* signature = nullptr;
    std::span<const ArchiveEntry> payload;
};

Result<Layout> SplitLayout(const std::vector<ArchiveEntry>& members);

// Matches the payload members against the manifest: the same files, in manifest order, with the
// same sizes. Hashes are not checked here (CheckHashes).
Result<void> CheckPayloadLayout(const Manifest& manifest, std::span<const ArchiveEntry> payload);

// One member to hash: its bytes, the digest the signed manifest gives, its path (for the error).
struct HashCheck {
    std::span<const std::byte> data;
    const Sha256Digest* expected;
    const std::string* path;
};

// The SHA-256 of each of `data`, hashed on up to `max_threads` threads (at most one per CPU).
std::vector<Sha256Digest> Sha256OfEach(std::span<const std::span<const std::byte>> data,
                                       unsigned max_threads = 8);

// The first of `checks` (in the order given) whose digest differs, as a hash-mismatch error.
Result<void> CompareDigests(std::span<const HashCheck> checks,
                            std::span<const Sha256Digest> digests);

// Sha256OfEach, then CompareDigests.
Result<void> CheckHashes(std::span<const HashCheck> checks);

// CheckPayloadLayout, then every member's hash.
Result<void> CheckPayload(const Manifest& manifest, std::span<const ArchiveEntry> payload);

}  // namespace peinit::detail
