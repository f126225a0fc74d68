#include "stages/autoload/sealed_tree.h"

#include <link.h>
#include <spdlog/spdlog.h>
#include <sys/auxv.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <system_error>

#include "peinit/record/policy.h"
#include "peinit/core/sealed_tree.h"
#include "peinit/modload/packages.h"
#include "peinit/sys/kernel.h"
#include "peinit/sys/kernel_release.h"
#include "peinit/sys/record.h"

namespace peinit {

namespace {

namespace fs = std::filesystem;

Result<void> CopyFile(const fs::path& from, const fs::path& to, mode_t mode) {
    std::error_code ec;
    fs::create_directories(to.parent_path(), ec);
    if (ec) return Err("create " + to.parent_path().string() + ": " + ec.message());
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    if (ec) return Err("copy " + from.string() + " to " + to.string() + ": " + ec.message());
    if (::chmod(to.c_str(), mode) != 0) return ErrnoErr("chmod " + to.string());
    return Ok();
}

// The regular files below `from` (recursively) into `to`; kernel modules become empty stubs
// (the planner needs their paths, the bytes come only from packages). A missing `from` is an
// empty tree; symbolic links are not followed.
Result<void> CopyTree(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    if (!fs::is_directory(from, ec)) return Ok();
    for (auto it = fs::recursive_directory_iterator(from, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
        if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
        const std::string name = it->path().filename().string();
        const fs::path dest = to / fs::relative(it->path(), from);
        if (name.ends_with(".ko") || name.find(".ko.") != std::string::npos) {
            fs::create_directories(dest.parent_path(), ec);
            if (!std::ofstream(dest)) return Err("cannot create " + dest.string());
            continue;
        }
        PEINIT_TRY(CopyFile(it->path(), dest, 0444));
    }
    if (ec) return Err("read " + from.string() + ": " + ec.message());
    return Ok();
}

Result<void> WriteText(const fs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) return Err("cannot write " + file.string());
    if (::chmod(file.c_str(), 0444) != 0) return ErrnoErr("chmod " + file.string());
    return Ok();
}

Result<void> Fill(BootContext& ctx, const fs::path& tree, const std::string& release) {
    const fs::path wrapper = ctx.paths.Under(kImageHelperWrapperPath);
    std::error_code ec;
    if (!fs::is_regular_file(wrapper, ec)) {
        return Err("the image has no " + std::string(kImageHelperWrapperPath) +
                   " (peinit-image ships it): no helper can be sealed");
    }
    PEINIT_TRY(CopyFile(wrapper, tree / "bin/peinit-modprobe", 0555));
    BootContext::HelperProgram program;
    if (ctx.helper_program) {
        program = *ctx.helper_program;
    } else {
        program = PEINIT_TRY(RunningHelperProgram());
    }
    PEINIT_TRY(CopyFile(program.binary, tree / fs::path(kSealedPeinitInTree).relative_path(), 0555));
    for (const auto& [from, inside] : program.files) {
        PEINIT_TRY(CopyFile(from, tree / inside.relative_path(), 0555));
    }
    for (const char* dir : {"/etc/peinit/keys", "/usr/lib/peinit/packages", "/etc/modprobe.d",
                            "/lib/modprobe.d"}) {
        PEINIT_TRY(CopyTree(ctx.paths.Under(dir), tree / fs::path(dir).relative_path()));
    }
    PEINIT_TRY(CopyTree(ctx.paths.ModulesDir() / release, tree / "lib/modules" / release));

    PolicyRecord record{ctx.policy, ctx.hive.state, ctx.hive.path, {}, kSealedRoot};
    for (const auto& e : ctx.hive.errors) record.hive_errors.push_back(e.ToString());
    const fs::path policy = tree / fs::path(kSealedPolicyPath).filename();
    PEINIT_TRY(WriteFileAtomically(policy.string(), record.ToJson()));
    if (::chmod(policy.c_str(), 0444) != 0) return ErrnoErr("chmod " + policy.string());
    PEINIT_TRY(WriteText(tree / fs::path(kSealedPackagesIndex).filename(),
                         PackagesIndexText(tree / "usr/lib/peinit/packages")));
    return Ok();
}

}  // namespace

Result<BootContext::HelperProgram> RunningHelperProgram() {
    BootContext::HelperProgram program;
    std::error_code ec;
    program.binary = fs::read_symlink("/proc/self/exe", ec);
    if (ec) return Err("/proc/self/exe: " + ec.message());
    struct Walk {
        uintptr_t loader_base;
        std::vector<std::pair<fs::path, fs::path>> files;
    } walk{static_cast<uintptr_t>(getauxval(AT_BASE)), {}};
    dl_iterate_phdr(
        [](dl_phdr_info* info, size_t, void* data) -> int {
            auto* w = static_cast<Walk*>(data);
            const std::string name = info->dlpi_name ? info->dlpi_name : "";
            // The program itself has no name, the vDSO no path.
            if (name.empty() || !name.starts_with("/")) return 0;
            if (info->dlpi_addr == w->loader_base) {
                w->files.emplace_back(name, name);  // the loader, at its PT_INTERP path
            } else {
                w->files.emplace_back(
                    name, fs::path(kSealedLibDirInTree) / fs::path(name).filename());
            }
            return 0;
        },
        &walk);
    program.files = std::move(walk.files);
    return program;
}

Result<void> BuildSealedTree(BootContext& ctx) {
    const fs::path tree = ctx.paths.Under(kSealedRoot);
    std::string release = ctx.kernel_release;
    if (release.empty()) release = PEINIT_TRY(RunningKernelRelease());
    if (auto made = ctx.kernel.MakeDir(tree.string(), 0755);
        !made && made.error().code() != EEXIST) {
        return made.error().Context("sealed tree: ");
    }
    if (auto mounted = ctx.kernel.Mount("tmpfs", tree.string(), "tmpfs", MS_NOSUID | MS_NODEV,
                                        "mode=0755");
        !mounted) {
        return mounted.error().Context("sealed tree: ");
    }
    auto filled = Fill(ctx, tree, release);
    // Read-only whatever happened: nothing half filled stays writable.
    auto sealed = ctx.kernel.Mount("", tree.string(), "",
                                   MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "");
    if (!filled) return filled.error().Context("sealed tree: ");
    if (!sealed) return sealed.error().Context("sealed tree: remount read-only: ");
    auto flags = ctx.kernel.MountFlags(tree.string());
    if (!flags) return flags.error().Context("sealed tree: read back: ");
    constexpr unsigned long kWanted = ST_RDONLY | ST_NOSUID | ST_NODEV;
    if ((*flags & kWanted) != kWanted) {
        return Err("sealed tree: read back: " + tree.string() +
                   " is not mounted read-only, nosuid, nodev (flags " + std::to_string(*flags) +
                   ")");
    }
    ctx.sealed_root = tree;
    return Ok();
}

}  // namespace peinit
