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
    ArchiveMember* manifest = nullptr;
    ArchiveMember* signature = nullptr;
    std::span<ArchiveMember> payload;
};

Result<Layout> SplitLayout(std::vector<ArchiveMember>& members);

// Matches the payload members against the manifest (same files, order, sizes and SHA-256).
Result<void> CheckPayload(const Manifest& manifest, std::span<const ArchiveMember> payload);

}  // namespace peinit::detail
