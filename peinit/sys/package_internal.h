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

// Hashes every member of `checks` on up to one thread per CPU; the first mismatch in the order
// given is the error (hash-mismatch).
Result<void> CheckHashes(std::span<const HashCheck> checks);

// CheckPayloadLayout, then every member's hash.
Result<void> CheckPayload(const Manifest& manifest, std::span<const ArchiveEntry> payload);

}  // namespace peinit::detail
