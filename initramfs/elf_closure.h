#pragma once

// The shared-library closure of ELF executables, computed the way the dynamic loader would at
// run time but offline: PT_INTERP, DT_NEEDED, DT_RPATH/DT_RUNPATH (with $ORIGIN) and the
// system search directories, read from the files with libelf (peinit/sys/elf_file.h; no ldd,
// nothing is executed). A malformed file is an error naming it and what libelf found wrong.
//
// What we deliberately do not model: LD_LIBRARY_PATH and LD_PRELOAD (the image has no
// environment at /init time), /etc/ld.so.cache (the image ships none, so the loader in the
// image falls back to the same system directories we search), and glibc-hwcaps / legacy
// hwcap subdirectories (those hold CPU-specific variants; the image ships the baseline copy,
// which works on every CPU the image may boot on).

#include <cstdint>
#include <string>
#include <vector>

#include "peinit/core/result.h"

namespace peinit::image {

struct ElfInfo {
    uint8_t elf_class = 0;  // ELFCLASS64 / ELFCLASS32
    uint16_t machine = 0;   // EM_X86_64, ...
    uint16_t type = 0;      // ET_EXEC, ET_DYN
    std::string interp;     // PT_INTERP, empty for static binaries and libraries
    std::string soname;     // DT_SONAME
    std::vector<std::string> needed;
    std::vector<std::string> rpath;    // DT_RPATH entries (colon-split, unexpanded)
    std::vector<std::string> runpath;  // DT_RUNPATH entries (colon-split, unexpanded)
};

// True when the file starts with the ELF magic (false for scripts and data).
bool IsElfFile(const std::string& path);

// True for an ELF relocatable object (ET_REL), such as a kernel module (.ko).
bool IsElfRelocatable(const std::string& path);

// Reads the headers of one ELF file: the ELF header, PT_INTERP, and the .dynamic section (the
// contents of PT_DYNAMIC) with its string table.
Result<ElfInfo> ReadElf(const std::string& path);

// One object the closure needs.
struct ResolvedObject {
    std::string name;       // how it was asked for: the DT_NEEDED string or the PT_INTERP path
    std::string path;       // where the loader finds it (the path to use inside the image)
    std::string host_path;  // the file to copy (path with symlinks resolved, under sysroot)
};

struct ClosureOptions {
    // Host root the libraries are looked up in ("/" normally; a fixture root in tests).
    std::string sysroot = "/";
    // System search directories, in order. Empty: the Debian multiarch defaults for the
    // machine of the first root (/lib/<triplet>, /usr/lib/<triplet>, /lib, /usr/lib), the
    // same list glibc's loader searches when there is no ld.so.cache.
    std::vector<std::string> search_dirs;
    // Sonames the first root opens with dlopen(3) (no DT_NEEDED names them; PID 1's TPM
    // libraries, peinit/tpm/tss2.h): looked up as that root's DT_NEEDED would be, shipped with
    // their own closure. Optional: one that is not found is left out (see `missing_dlopened`).
    std::vector<std::string> dlopened;
    // Filled with the dlopened sonames that were not found, when not null.
    std::vector<std::string>* missing_dlopened = nullptr;
};

// The Debian multiarch search directories for an ELF machine, or an error for machines we
// have no triplet for.
Result<std::vector<std::string>> DefaultSearchDirs(uint16_t machine);

// The closure of `roots` (host paths of ELF files): every interpreter and library, each once,
// in a deterministic order (breadth-first from the roots, as the loader loads them). A library
// that cannot be found is an error naming it and the object that needs it.
Result<std::vector<ResolvedObject>> ElfClosure(const std::vector<std::string>& roots,
                                               const ClosureOptions& opts = {});

}  // namespace peinit::image
