#pragma once

// Kernel module file names: a module is `NAME.ko`, or compressed as distributions ship
// them, `NAME.ko.xz` (Debian 13, Fedora), `NAME.ko.zst` (Arch, Fedora), `NAME.ko.gz`, the same
// set kmod reads. Pure: no I/O.

#include <optional>
#include <string>
#include <string_view>

namespace peinit {

enum class ModuleCompression { kNone, kGzip, kXz, kZstd };

// The compression a module file name says, or nullopt when the name is not a module's.
std::optional<ModuleCompression> ModuleCompressionOf(std::string_view file_name);

// The file name without ".ko[.gz|.xz|.zst]" ("ext4.ko.zst" -> "ext4"); unchanged when the name
// is not a module's.
std::string_view StripModuleSuffix(std::string_view file_name);

std::string_view ToString(ModuleCompression c);  // "none", "gzip", "xz", "zstd"

}  // namespace peinit
