#include "peinit/sys/elf_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <mutex>

namespace peinit {

namespace {

void InitLibelf() {
    static std::once_flag once;
    std::call_once(once, [] { (void)elf_version(EV_CURRENT); });
}

}  // namespace

std::string ElfError() {
    const char* msg = elf_errmsg(-1);
    return msg != nullptr ? msg : "unknown libelf error";
}

ElfFile::ElfFile(int fd, Elf* elf) : fd_(fd), elf_(elf) {}

ElfFile::ElfFile(ElfFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), elf_(std::move(other.elf_)) {}

ElfFile::~ElfFile() {
    elf_.reset();
    if (fd_ >= 0) ::close(fd_);
}

Result<ElfFile> ElfFile::Open(const std::string& path) {
    InitLibelf();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoErr(path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        return ErrnoErr(path, e);
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Err(path + ": not a regular file");
    }
    // READ_MMAP: the file is mapped, not read into memory; libelf never writes to it.
    Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
    if (elf == nullptr) {
        std::string why = ElfError();
        ::close(fd);
        return Err(path + ": malformed ELF: " + why);
    }
    return ElfFile(fd, elf);
}

Result<ElfFile> ElfFile::FromMemory(std::span<const std::byte> bytes) {
    InitLibelf();
    // elf_memory takes a non-const pointer but, opened this way, only reads (sections are used
    // in place when aligned and native, copied otherwise): the bytes may be a read-only mapping.
    Elf* elf = elf_memory(const_cast<char*>(reinterpret_cast<const char*>(bytes.data())),
                          bytes.size());
    if (elf == nullptr) return Err(ElfError());
    return ElfFile(-1, elf);
}

bool ElfFile::IsElf() const { return elf_kind(elf_.get()) == ELF_K_ELF; }

Result<GElf_Ehdr> ElfFile::Header() const {
    if (!IsElf()) return Err("not an ELF file");
    GElf_Ehdr ehdr;
    if (gelf_getehdr(elf_.get(), &ehdr) == nullptr) return Err("bad ELF header: " + ElfError());
    return ehdr;
}

Result<GElf_Shdr> ElfFile::SectionHeader(Elf_Scn* scn) const {
    GElf_Shdr shdr;
    if (gelf_getshdr(scn, &shdr) == nullptr) return Err("bad section header: " + ElfError());
    return shdr;
}

}  // namespace peinit
