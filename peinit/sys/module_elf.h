#pragma once

// The name a kernel module's image declares for itself, read with libelf (elfutils), and the
// check that binds a package member's file name to it (R-10; issue: a package's file name is
// bound to the module inside it).
//
// A module (x86-64, ELF relocatable) names itself twice: `name=` in its .modinfo section and
// `struct module`'s `name` in .gnu.linkonce.this_module (offset 24 on x86-64: after `state` and
// the `list` head), the name the kernel registers it under. Both are written by modpost; a
// file whose two names differ, or whose name is not the one it is looked up by, is not the
// module it claims to be.

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"

namespace peinit {

struct ModuleElfInfo {
    std::string name;      // normalised ('-' -> '_')
    std::string vermagic;  // .modinfo vermagic= ("6.1.0-56-amd64 SMP preempt mod_unload ..."), or ""
    // The parameter names .modinfo declares (parm= and parmtype=), in order, each once.
    std::vector<std::string> parameters;
};

// What a module image says of itself; nullopt when `image` is not an ELF file at all. An ELF
// file that is not a module with one consistent name is an error saying why.
Result<std::optional<ModuleElfInfo>> ReadModuleElf(std::span<const std::byte> image);

// The kernel release a vermagic string names (its first word).
std::string KernelReleaseOfVermagic(std::string_view vermagic);

// The module name `image` declares (normalised: '-' -> '_'); nullopt when `image` is not an ELF
// file at all (the kernel refuses such bytes by itself). An ELF file that is not a module with
// one consistent name is an error saying why.
Result<std::optional<std::string>> ModuleNameOfImage(std::span<const std::byte> image);

// The build-time check of a module file going into a package or an image (`path` names it; a
// .ko.gz/.xz/.zst is decompressed first): it is an ELF kernel module, named as its file
// ("foo-bar.ko" holds foo_bar), and, when `kernel_release` is given and the module has a
// vermagic, built for that release. Errors name the file and say what it is instead.
Result<void> CheckModuleFile(std::string_view path, std::span<const std::byte> bytes,
                             std::string_view kernel_release);

// Checks that the (decompressed) module image of package member `path` is module `expected`.
// A mismatch, or an ELF file without a consistent module name, is a PackageReject
// kModuleNameMismatch error ("module-name-mismatch: modules/foo.ko holds module \"bar\"");
// bytes that are not ELF pass (nothing the kernel would load).
Result<void> CheckModuleName(std::span<const std::byte> image, std::string_view expected,
                             std::string_view path);

}  // namespace peinit
