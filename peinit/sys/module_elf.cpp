#include "peinit/sys/module_elf.h"

#include <cstring>

#include "peinit/core/module_policy.h"
#include "peinit/sys/elf_file.h"
#include "peinit/sys/package_format.h"

namespace peinit {

namespace {

// Offset of `name` in struct module on x86-64 (enum module_state, then struct list_head).
constexpr std::size_t kThisModuleNameOffset = 24;
constexpr std::size_t kModuleNameLen = 56;  // MODULE_NAME_LEN on 64-bit

std::string_view Bytes(Elf_Data* data) {
    if (data == nullptr || data->d_buf == nullptr) return {};
    return {static_cast<const char*>(data->d_buf), data->d_size};
}

// `name=` among the NUL-separated key=value strings of .modinfo ("" when absent).
std::string ModinfoName(std::string_view modinfo) {
    for (std::size_t pos = 0; pos < modinfo.size();) {
        std::size_t end = modinfo.find('\0', pos);
        if (end == std::string_view::npos) end = modinfo.size();
        std::string_view entry = modinfo.substr(pos, end - pos);
        if (entry.starts_with("name=")) return std::string(entry.substr(5));
        pos = end + 1;
    }
    return "";
}

}  // namespace

Result<std::optional<std::string>> ModuleNameOfImage(std::span<const std::byte> image) {
    if (image.size() < EI_NIDENT || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0) {
        return std::optional<std::string>();
    }
    auto elf_or = ElfFile::FromMemory(image);
    if (!elf_or) return elf_or.error().Context("not a valid ELF file: ");
    const ElfFile& elf = *elf_or;
    auto ehdr_or = elf.Header();
    if (!ehdr_or) return ehdr_or.error().Context("not a valid ELF file: ");
    const GElf_Ehdr& ehdr = *ehdr_or;
    if (ehdr.e_type != ET_REL || ehdr.e_ident[EI_CLASS] != ELFCLASS64) {
        return Err("not a 64-bit kernel module (ELF type " + std::to_string(ehdr.e_type) +
                   ", expected relocatable)");
    }
    std::size_t shstrndx = 0;
    if (elf_getshdrstrndx(elf.get(), &shstrndx) != 0) {
        return Err("no section name table: " + ElfError());
    }
    std::string modinfo_name;
    std::optional<std::string> this_module_name;
    for (Elf_Scn* scn = elf_nextscn(elf.get(), nullptr); scn != nullptr;
         scn = elf_nextscn(elf.get(), scn)) {
        GElf_Shdr shdr = PEINIT_TRY(elf.SectionHeader(scn));
        if (shdr.sh_type == SHT_NOBITS) continue;
        const char* name = elf_strptr(elf.get(), shstrndx, shdr.sh_name);
        if (name == nullptr) continue;
        if (std::strcmp(name, ".modinfo") == 0) {
            modinfo_name = ModinfoName(Bytes(elf_rawdata(scn, nullptr)));
        } else if (std::strcmp(name, ".gnu.linkonce.this_module") == 0) {
            std::string_view data = Bytes(elf_rawdata(scn, nullptr));
            if (data.size() <= kThisModuleNameOffset) {
                return Err(".gnu.linkonce.this_module is too short for struct module");
            }
            data = data.substr(kThisModuleNameOffset, kModuleNameLen);
            this_module_name = std::string(data.substr(0, data.find('\0')));
        }
    }
    if (!this_module_name || this_module_name->empty()) {
        return Err("no module name in .gnu.linkonce.this_module (not a kernel module)");
    }
    if (!modinfo_name.empty() &&
        NormalizeModuleName(modinfo_name) != NormalizeModuleName(*this_module_name)) {
        return Err(".modinfo names module \"" + modinfo_name +
                   "\" but .gnu.linkonce.this_module names \"" + *this_module_name + "\"");
    }
    return std::optional<std::string>(NormalizeModuleName(*this_module_name));
}

Result<void> CheckModuleName(std::span<const std::byte> image, std::string_view expected,
                             std::string_view path) {
    auto name = ModuleNameOfImage(image);
    if (!name) {
        return Reject(PackageReject::kModuleNameMismatch,
                      std::string(path) + ": " + name.error().message());
    }
    if (*name && **name != NormalizeModuleName(expected)) {
        return Reject(PackageReject::kModuleNameMismatch,
                      std::string(path) + " holds module \"" + **name + "\", not \"" +
                          NormalizeModuleName(expected) + "\"");
    }
    return Ok();
}

}  // namespace peinit
