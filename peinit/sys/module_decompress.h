#pragma once

// The ELF image of a module file: compressed modules (.ko.gz, .ko.xz, .ko.zst) are
// decompressed in user space with the libraries kmod itself uses (zlib, liblzma, libzstd), from
// the bytes already verified in memory, and handed to init_module(2); nothing is re-read.

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "peinit/core/module_file.h"
#include "peinit/core/result.h"

namespace peinit {

// At most this many bytes of decompressed module (the largest modules are ~20 MB).
inline constexpr std::size_t kMaxModuleImageBytes = 256u << 20;

// At most this much decoder memory per stream: the xz dictionary and the zstd window a module's
// header asks for are allocated before the first byte comes out, and a crafted header can ask
// for 1.5 GiB (xz) or 2 GiB (zstd). The kernel's own `make modules_install` compresses with a
// 1 MiB xz dictionary and zstd's default window (at most 8 MiB), so 64 MiB leaves ample room.
inline constexpr std::uint64_t kMaxDecoderMemory = 64u << 20;
// At most this many streams decode at once in a process, whatever the number of load workers:
// the decoders' memory together stays within kDecoderSlots * kMaxDecoderMemory.
inline constexpr std::ptrdiff_t kDecoderSlots = 2;

// The bytes to pass to init_module: a view of `bytes` for an uncompressed module, else the
// decompressed copy it owns.
class ModuleImage {
  public:
    std::span<const std::byte> bytes() const { return view_; }

    static ModuleImage View(std::span<const std::byte> bytes) { return ModuleImage(bytes, {}); }
    static ModuleImage Own(std::vector<std::byte> bytes) {
        ModuleImage m({}, std::move(bytes));
        m.view_ = m.owned_;
        return m;
    }
    ModuleImage(ModuleImage&& o) noexcept : owned_(std::move(o.owned_)) {
        view_ = owned_.empty() ? o.view_ : std::span<const std::byte>(owned_);
    }
    ModuleImage(const ModuleImage&) = delete;
    ModuleImage& operator=(const ModuleImage&) = delete;

  private:
    ModuleImage(std::span<const std::byte> view, std::vector<std::byte> owned)
        : view_(view), owned_(std::move(owned)) {}
    std::span<const std::byte> view_;
    std::vector<std::byte> owned_;
};

// `path` names the file (its suffix says the compression). Errors name the path and the
// decoder's complaint (truncated, corrupt, too large, a dictionary or window over
// kMaxDecoderMemory). Blocks while kDecoderSlots other decompressions run.
Result<ModuleImage> ModuleImageOf(std::string_view path, std::span<const std::byte> bytes);

// Compresses an ELF image the way `xz --check=crc32`, `zstd` and `gzip` would, for tests and for
// peinit-pkg (e.g. to produce fixtures). Errors for kNone.
Result<std::vector<std::byte>> CompressModule(ModuleCompression c, std::span<const std::byte> elf);

}  // namespace peinit
