#include "initramfs/image_builder.h"

#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

#include "initramfs/elf_closure.h"
#include "initramfs/image_units.h"

namespace peinit::image {

Result<std::vector<ShippedBinary>> LoadBinaryManifest(const std::string& path) {
    std::ifstream in(path);
    if (!in) return ErrnoErr(path);
    std::vector<ShippedBinary> out;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
        std::stringstream ss(line);
        std::string image_path, host_path, req, extra;
        if (!(ss >> image_path)) continue;
        if (!(ss >> host_path >> req) || (ss >> extra) || image_path[0] != '/' ||
            (req != "required" && req != "optional"))
            return Err(path + ":" + std::to_string(n) +
                       ": expected \"IMAGE_PATH HOST_PATH required|optional\"");
        out.push_back({image_path, host_path, req == "required"});
    }
    return out;
}

namespace {

bool Exists(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0;
}

// The skeleton every image has: mount points, and the two device nodes peinit needs for
// output before devtmpfs is mounted.
Result<void> AddSkeleton(ImageTree& tree) {
    for (const char* d : {"proc", "sys", "dev", "run", "etc", "etc/peinit", "etc/peinit/units",
                          "etc/peinit/keys"})
        PEINIT_TRY(tree.AddDirectory(d, 0755));
    PEINIT_TRY(tree.AddDirectory("tmp", 01777));
    PEINIT_TRY(tree.AddDirectory("root", 0700));
    PEINIT_TRY(tree.AddCharDevice("dev/console", 0600, 5, 1));
    PEINIT_TRY(tree.AddCharDevice("dev/null", 0666, 1, 3));
    return Ok();
}

std::string Join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& e : v) s += (s.empty() ? "" : "\n") + e;
    return s;
}

}  // namespace

Result<ImageContents> ComposeImage(const ImageDefinition& def, const BuildOptions& opts) {
    ImageContents c;
    std::vector<std::string> errors;
    auto collect = [&](const Error& e) { errors.push_back(e.message()); };

    // 1. The kernel tree.
    auto kernel = OpenKernelTree(opts.kernel_dir);
    if (!kernel) return Err(def.file + ": kernel \"" + KernelKindName(def.kernel) + "\": " +
                            kernel.error().message());
    c.kernel = *kernel;

    // 2. Units and hive, validated with the same rules peinit applies at boot.
    UnitScan units;
    if (auto u = ScanUnits(def.unit_dirs)) units = std::move(*u);
    else collect(u.error());
    if (def.hive)
        if (auto h = ValidateHive(def.hive->value); !h) collect(h.error());

    // 3. Modules: the units' boot set plus the definition's extras, with dependencies.
    std::vector<ModuleRequest> requests = units.modules;
    for (const auto& m : def.modules)
        requests.push_back({m.value, def.file + ":" + std::to_string(m.line)});
    ModuleClosure closure;
    if (auto r = ResolveModuleClosure(c.kernel, requests)) closure = std::move(*r);
    else collect(r.error());

    // 4. Programs.
    std::vector<ShippedBinary> programs;
    for (const auto& b : opts.binaries) {
        if (!Exists(b.host_path)) {
            if (b.required)
                errors.push_back(b.host_path + ": not found (ships as " + b.image_path +
                                 "; build it first)");
            continue;
        }
        programs.push_back(b);
    }
    if (!errors.empty()) return Err(Join(errors));

    PEINIT_TRY(AddSkeleton(c.tree));
    std::vector<std::string> elf_roots;
    for (const auto& b : programs) {
        PEINIT_TRY(c.tree.AddHostFile(b.image_path, b.host_path, 0755));
        c.binaries.push_back(b.image_path);
        if (IsElfFile(b.host_path)) elf_roots.push_back(b.host_path);
    }
    for (const auto& f : def.files) {
        uint32_t mode = 0644;
        if (f.mode) {
            mode = *f.mode;
        } else {
            // Only the executable bit survives git, so that is all we take from the source.
            struct stat st;
            if (::stat(f.src.c_str(), &st) == 0 && (st.st_mode & 0111) != 0) mode = 0755;
        }
        auto added = c.tree.AddHostFile(f.dst, f.src, mode);
        if (!added) return added.error().Context(def.file + ":" + std::to_string(f.line) + ": ");
        if (IsElfFile(f.src)) elf_roots.push_back(f.src);
    }

    // 5. Shared-library closure of every ELF we ship.
    ClosureOptions copts;
    copts.sysroot = opts.sysroot;
    auto libs = ElfClosure(elf_roots, copts);
    if (!libs) return libs.error().Context("shared libraries: ");
    for (const auto& lib : *libs) {
        PEINIT_TRY(c.tree.AddHostFile(lib.path, lib.host_path, 0755));
        c.libraries.push_back(lib.path);
    }

    // 6. Units, hive, modules.
    for (const auto& u : units.files) {
        std::string dst = std::string(kImageUnitsDir) + "/" + u.name;
        PEINIT_TRY(c.tree.AddHostFile(dst, u.host_path, 0644));
        c.units.push_back(dst);
    }
    if (def.hive) PEINIT_TRY(c.tree.AddHostFile(kImageHivePath, def.hive->value, 0644));
    PEINIT_TRY(AddModulesToTree(c.tree, c.kernel, closure));
    for (const auto& m : closure.files) c.modules.push_back(m.name);
    c.builtin_modules = closure.builtins;
    return c;
}

Result<ImageContents> BuildImage(const ImageDefinition& def, const BuildOptions& opts,
                                 Compression compression, const std::string& output) {
    ImageContents c = PEINIT_TRY(ComposeImage(def, opts));
    WriteOptions w;
    w.compression = compression;
    w.mtime = opts.mtime;
    PEINIT_TRY(WriteCpio(c.tree, output, w));
    return c;
}

}  // namespace peinit::image
