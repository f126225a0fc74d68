#pragma once

// An ELF file opened with libelf (elfutils): the one way peinit reads ELF, for module images
// (peinit/sys/module_elf.h) and the image builder's shared-library closure
// (initramfs/elf_closure.h). libelf checks every offset and size against the file, so malformed
// input is an error from it, never a read out of bounds.

#include <gelf.h>
#include <libelf.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "peinit/core/result.h"

namespace peinit {

class ElfFile {
  public:
    // Opens `path` read-only (any regular file: IsElf() says whether it is ELF). Errors name the
    // path: "PATH: No such file or directory", "PATH: malformed ELF: <libelf's reason>".
    static Result<ElfFile> Open(const std::string& path);
    // Reads `bytes` in place; they must outlive the handle.
    static Result<ElfFile> FromMemory(std::span<const std::byte> bytes);

    // The file starts with the ELF magic.
    bool IsElf() const;
    // The ELF header (class-independent); an error when it is malformed or the file not ELF.
    Result<GElf_Ehdr> Header() const;
    // The section header of `scn`; an error when it is malformed.
    Result<GElf_Shdr> SectionHeader(Elf_Scn* scn) const;
    Elf* get() const { return elf_.get(); }

    ElfFile(ElfFile&& other) noexcept;
    ElfFile& operator=(ElfFile&&) = delete;
    ~ElfFile();

  private:
    ElfFile(int fd, Elf* elf);
    struct End {
        void operator()(Elf* e) const { elf_end(e); }
    };
    int fd_ = -1;  // Open() only: libelf may read the file lazily
    std::unique_ptr<Elf, End> elf_;
};

// libelf's message for its last error ("invalid section header", ...).
std::string ElfError();

}  // namespace peinit
