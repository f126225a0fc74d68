#pragma once

// Image definitions: images/<name>/image.toml (schema in initramfs/IMAGE.md).
//
// The parser only checks the definition itself (types, known keys and values, that the named
// files exist); what the files contain (units, hive, modules) is validated by the builder.
// Every error names the file and line: "images/demo/image.toml:7: unknown key \"modlues\"".

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "initramfs/image_tree.h"
#include "peinit/core/result.h"

namespace peinit::image {

// `kernel`: our patched kernel (kernel/build), Debian's fixture (kernel/debian-kernel), an
// installed kernel named by its release ("6.1.0-57-amd64": ROOT/boot/vmlinuz-KVER,
// ROOT/lib/modules/KVER), or the running kernel's release (uname -r) installed the same way.
enum class KernelKind { kPeinit, kDebian, kRelease, kRunning };
const char* KernelKindName(KernelKind k);

// True for a string that can be a kernel release (`uname -r`): starts with a digit, then
// [A-Za-z0-9._+~-], at most 64 characters.
bool IsKernelRelease(const std::string& s);

// How the image's module set is chosen beyond the units (`modules_from`, initramfs/IMAGE.md):
// kUnits: the units, `modules`, hive and command line only (the default); kHost: plus the drivers
// this machine's root, console and keyboard use (host_modules.h); kGeneric: plus every storage
// and file-system driver of the kernel, for images that must boot other machines.
enum class ModuleMode { kUnits, kHost, kGeneric };
const char* ModuleModeName(ModuleMode m);

// A value together with the line of image.toml it came from, for later error messages.
template <typename T>
struct Located {
    T value;
    int line = 0;
};

struct ExtraFile {
    std::string src;  // absolute host path (resolved against the image directory)
    std::string dst;  // absolute path inside the image
    std::optional<uint32_t> mode;
    int line = 0;
};

// A pre-built signed package shipped as it is (`packages` / `[[packages]]`).
enum class PackageExpect { kValid, kRejected };
struct ExtraPackage {
    std::string path;  // absolute host path
    // kValid: must verify at build time against the image's trusted keys and kernel release.
    // kRejected: must fail that verification (a deliberately broken package, for tests of the
    // boot-time rejection path); shipped all the same.
    PackageExpect expect = PackageExpect::kValid;
    int line = 0;
};

struct BootSettings {
    int memory_mb = 512;
    int smp = 1;
    std::vector<std::string> qemu_args;  // extra QEMU arguments (devices the image expects)
};

struct ImageDefinition {
    std::string name;  // directory name ("demo")
    std::string dir;   // the image directory as given
    std::string file;  // path of image.toml, as used in messages
    std::string description;
    KernelKind kernel = KernelKind::kPeinit;
    std::string kernel_release;  // kRelease: the release named by `kernel`
    int kernel_line = 0;
    ModuleMode modules_from = ModuleMode::kUnits;
    int modules_from_line = 0;
    std::vector<Located<std::string>> unit_dirs;  // absolute host paths
    std::optional<Located<std::string>> hive;     // absolute host path
    std::string cmdline;
    int cmdline_line = 0;
    Compression compression = Compression::kZstd;
    std::vector<Located<std::string>> modules;
    std::vector<ExtraFile> files;
    // Out-of-tree modules (.ko files, absolute host paths) added to the image's module tree
    // (lib/modules/KVER/extra/) before the module set is resolved and depmod runs.
    std::vector<Located<std::string>> extra_modules;
    // The Ed25519 private key (peinit-pkg keygen) that signs the image's module package; none:
    // the build-local key in ${PEINIT_CACHE:-~/.cache/peinit}/image-keys/.
    std::optional<Located<std::string>> signing_key;
    std::vector<ExtraPackage> packages;      // shipped to /usr/lib/peinit/packages/
    std::vector<Located<std::string>> keys;  // extra trusted keys, /etc/peinit/keys/
    // Strip debug information from the programs the image ships (peinit, peinitctl and ELF
    // [[files]]); libraries come from the host's packages, already stripped.
    bool strip = true;
    // Ship each module's real .ko bytes at its /lib/modules path instead of an empty placeholder
    // (baselines such as `modprobe -a` in benchmarks, debugging). peinit itself still loads only
    // from the signed package; the bytes are also packed there as usual.
    bool loose_modules = false;
    BootSettings boot;

    // Read with ReadImageDefinition: every problem of the definition ("FILE:LINE: message", in
    // file order). The fields that had none are set, so the builder still runs (and reports)
    // the checks that do not depend on the broken ones.
    std::vector<std::string> problems;
    std::set<std::string> broken;  // top-level keys with a problem
    bool syntax_errors = false;    // top-level lines were skipped: any key may be missing
    bool kernel_known = true;      // `kernel` is set and valid
    // True when `key` may be wrong or incomplete (a problem there, or a syntax error anywhere):
    // a check that depends on it would report consequences, not mistakes.
    bool Broken(const std::string& key) const;
};

// Parses `dir`/image.toml (or `dir` itself when it names a .toml file). Any problem is an error
// (all of them, one per line).
Result<ImageDefinition> LoadImageDefinition(const std::string& dir);

// As LoadImageDefinition, but the problems are in `problems` and the error is only for a file
// that cannot be read or parsed at all: for the builder, which reports them with its own.
Result<ImageDefinition> ReadImageDefinition(const std::string& dir);

// Parses definition text; `file` is used in messages and `dir` to resolve relative paths.
Result<ImageDefinition> ParseImageDefinition(const std::string& text, const std::string& file,
                                             const std::string& dir);

}  // namespace peinit::image
