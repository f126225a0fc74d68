#pragma once

// A minimal x86-64 kernel module image for tests: an ELF relocatable with the two places a
// module names itself (.modinfo `name=` and struct module's name in .gnu.linkonce.this_module),
// enough for peinit/sys/module_elf.h. `modinfo_name` empty: no name= entry. FakeModuleLayout
// builds the ambiguous shapes a crafted module can take (a second name=, a second section,
// a section the kernel does not allocate).

#include <elf.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace peinit::testing {

struct FakeModuleLayout {
    std::string extra_modinfo_name;       // a second name= entry when not empty
    std::string second_this_module_name;  // a second .gnu.linkonce.this_module when not empty
    bool this_module_allocated = true;    // SHF_ALLOC on .gnu.linkonce.this_module
};

inline std::vector<std::byte> FakeModuleElf(const std::string& this_module_name,
                                            const std::string& modinfo_name,
                                            std::uint16_t type = ET_REL,
                                            const FakeModuleLayout& layout = {}) {
    std::string modinfo = "license=GPL";
    modinfo.push_back('\0');
    for (const std::string& n : {modinfo_name, layout.extra_modinfo_name}) {
        if (n.empty()) continue;
        modinfo += "name=" + n;
        modinfo.push_back('\0');
    }
    auto struct_module = [](const std::string& name) {
        std::string bytes(24, '\0');  // enum module_state + struct list_head
        bytes += name;
        bytes.resize(24 + 56 + 16, '\0');
        return bytes;
    };
    const std::string this_module = struct_module(this_module_name);
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
    const bool second = !layout.second_this_module_name.empty();
    const std::string other_module = struct_module(layout.second_this_module_name);
    const std::size_t other_at = second ? append(other_module) : 0;
    out.resize((out.size() + 7) & ~std::size_t{7});
    const std::uint16_t count = second ? 5 : 4;
    Elf64_Shdr sh[5] = {};
    const std::uint64_t this_flags = layout.this_module_allocated ? SHF_ALLOC | SHF_WRITE : 0;
    sh[1] = {1, SHT_PROGBITS, SHF_ALLOC, 0, modinfo_at, modinfo.size(), 0, 0, 1, 0};
    sh[2] = {10, SHT_PROGBITS, this_flags, 0, this_at, this_module.size(), 0, 0, 8, 0};
    sh[3] = {36, SHT_STRTAB, 0, 0, str_at, shstrtab.size(), 0, 0, 1, 0};
    sh[4] = {10, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 0, other_at, other_module.size(), 0, 0, 8, 0};
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
    eh.e_shnum = count;
    eh.e_shstrndx = 3;
    std::memcpy(out.data(), &eh, sizeof eh);
    const std::size_t sh_at = out.size();
    out.resize(sh_at + count * sizeof(Elf64_Shdr));
    std::memcpy(out.data() + sh_at, sh, count * sizeof(Elf64_Shdr));
    return out;
}

}  // namespace peinit::testing
