#include "peinit/sys/module_elf.h"

#include <algorithm>
#include <cstring>

#include "peinit/core/module_policy.h"
#include "peinit/sys/elf_file.h"
#include "peinit/sys/module_decompress.h"
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

// The NUL-separated key=value strings of .modinfo, in order.
std::vector<std::pair<std::string_view, std::string_view>> ModinfoEntries(std::string_view modinfo) {
    std::vector<std::pair<std::string_view, std::string_view>> out;
    for (std::size_t pos = 0; pos < modinfo.size();) {
        std::size_t end = modinfo.find('\0', pos);
        if (end == std::string_view::npos) end = modinfo.size();
        std::string_view entry = modinfo.substr(pos, end - pos);
        if (auto eq = entry.find('='); eq != std::string_view::npos) {
            out.emplace_back(entry.substr(0, eq), entry.substr(eq + 1));
        }
        pos = end + 1;
    }
    return out;
}

}  // namespace

Result<std::optional<ModuleElfInfo>> ReadModuleElf(std::span<const std::byte> image) {
    if (image.size() < EI_NIDENT || std::memcmp(image.data(), ELFMAG, SELFMAG) != 0) {
        return std::optional<ModuleElfInfo>();
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
    ModuleElfInfo info;
    std::string modinfo_name;
    std::optional<std::string> this_module_name;
    int modinfo_sections = 0;
    int this_module_sections = 0;
    for (Elf_Scn* scn = elf_nextscn(elf.get(), nullptr); scn != nullptr;
         scn = elf_nextscn(elf.get(), scn)) {
        GElf_Shdr shdr = PEINIT_TRY(elf.SectionHeader(scn));
        const char* name = elf_strptr(elf.get(), shstrndx, shdr.sh_name);
        if (name == nullptr) continue;
        // The kernel (find_sec) takes the first allocated section of a name and the first name=;
        // other readers take the last. A module that names itself twice is refused rather than
        // read one way here and another way by the kernel.
        const bool is_modinfo = std::strcmp(name, ".modinfo") == 0;
        const bool is_this_module = std::strcmp(name, ".gnu.linkonce.this_module") == 0;
        if (!is_modinfo && !is_this_module) continue;
        if (++(is_modinfo ? modinfo_sections : this_module_sections) > 1) {
            return Err(std::string("two ") + name +
                       " sections (the kernel reads the first, other tools the last)");
        }
        if ((shdr.sh_flags & SHF_ALLOC) == 0 || shdr.sh_type == SHT_NOBITS) {
            return Err(std::string(name) + " is not an allocated section with contents (the "
                       "kernel would not read it)");
        }
        if (is_modinfo) {
            bool named = false;
            for (const auto& [key, value] : ModinfoEntries(Bytes(elf_rawdata(scn, nullptr)))) {
                if (key == "name") {
                    if (named) return Err(".modinfo has two name= entries");
                    named = true;
                    modinfo_name = value;
                } else if (key == "vermagic") {
                    info.vermagic = value;
                } else if (key == "parm" || key == "parmtype") {
                    std::string param(value.substr(0, value.find(':')));
                    if (std::find(info.parameters.begin(), info.parameters.end(), param) ==
                        info.parameters.end()) {
                        info.parameters.push_back(std::move(param));
                    }
                }
            }
        } else {
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
    info.name = NormalizeModuleName(*this_module_name);
    return std::optional<ModuleElfInfo>(std::move(info));
}

Result<std::optional<std::string>> ModuleNameOfImage(std::span<const std::byte> image) {
    auto info = PEINIT_TRY(ReadModuleElf(image));
    if (!info) return std::optional<std::string>();
    return std::optional<std::string>(info->name);
}

std::string KernelReleaseOfVermagic(std::string_view vermagic) {
    return std::string(vermagic.substr(0, vermagic.find(' ')));
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

Result<void> CheckModuleFile(std::string_view path, std::span<const std::byte> bytes,
                             std::string_view kernel_release) {
    const std::string where(path);
    auto image = ModuleImageOf(path, bytes);
    if (!image) return image.error();
    auto info = ReadModuleElf(image->bytes());
    if (!info) return info.error().Context(where + ": ");
    if (!*info) return Err(where + ": not a kernel module (no ELF header)");
    const std::string expected = ModuleNameOfPath(where);
    if ((*info)->name != NormalizeModuleName(expected)) {
        return Err(where + ": holds module \"" + (*info)->name + "\", not \"" +
                   NormalizeModuleName(expected) + "\" (a module is looked up by its file name)");
    }
    if (!kernel_release.empty() && !(*info)->vermagic.empty()) {
        const std::string built_for = KernelReleaseOfVermagic((*info)->vermagic);
        if (built_for != kernel_release) {
            return Err(where + ": built for kernel " + built_for + " (vermagic \"" +
                       (*info)->vermagic + "\"), not " + std::string(kernel_release) +
                       ": the kernel would refuse it (ENOEXEC)");
        }
    }
    return Ok();
}

}  // namespace peinit
