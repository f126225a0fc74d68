#pragma once

// A minimal x86-64 kernel module image for tests: an ELF relocatable with the two places a
// module names itself (.modinfo `name=` and struct module's name in .gnu.linkonce.this_module),
// enough for peinit/sys/module_elf.h. `modinfo_name` empty: no name= entry.

#include <elf.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace peinit::testing {

inline std::vector<std::byte> FakeModuleElf(const std::string& this_module_name,
                                            const std::string& modinfo_name,
                                            std::uint16_t type = ET_REL) {
    std::string modinfo = "license=GPL";
    modinfo.push_back('\0');
    if (!modinfo_name.empty()) {
        modinfo += "name=" + modinfo_name;
        modinfo.push_back('\0');
    }
    std::string this_module(24, '\0');  // enum module_state + struct list_head
    this_module += this_module_name;
    this_module.resize(24 + 56 + 16, '\0');
    const std::string shstrtab =
        std::string("\0.modinfo\0.gnu.linkonce.this_module\0.shstrtab\0", 46);
    std::vector<std::byte> out(sizeof(Elf64_Ehdr));
    auto append = [&](const std::string& data) {
        std::size_t at = out.size();
        out.resize(at + data.size());
        std::memcpy(out.data() + at, data.data(), data.size());
        return at;
    };
    const std::size_t modinfo_at = append(modinfo);
    const std::size_t this_at = append(this_module);
    const std::size_t str_at = append(shstrtab);
    out.resize((out.size() + 7) & ~std::size_t{7});
    Elf64_Shdr sh[4] = {};
    sh[1] = {1, SHT_PROGBITS, SHF_ALLOC, 0, modinfo_at, modinfo.size(), 0, 0, 1, 0};
    sh[2] = {10, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 0, this_at, this_module.size(), 0, 0, 8, 0};
    sh[3] = {36, SHT_STRTAB, 0, 0, str_at, shstrtab.size(), 0, 0, 1, 0};
    Elf64_Ehdr eh = {};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = ELFCLASS64;
    eh.e_ident[EI_DATA] = ELFDATA2LSB;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_type = type;
    eh.e_machine = EM_X86_64;
    eh.e_version = EV_CURRENT;
    eh.e_shoff = out.size();
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = 4;
    eh.e_shstrndx = 3;
    std::memcpy(out.data(), &eh, sizeof eh);
    const std::size_t sh_at = out.size();
    out.resize(sh_at + sizeof sh);
    std::memcpy(out.data() + sh_at, sh, sizeof sh);
    return out;
}

}  // namespace peinit::testing
