#include "initramfs/kernel_modules.h"
#include "peinit/core/text.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "initramfs/elf_closure.h"
#include "initramfs/process.h"
#include "peinit/core/cmdline.h"
#include "peinit/core/module_policy.h"
#include "peinit/core/plan.h"
#include "peinit/sys/kernel_release.h"
#include "peinit/sys/kmod.h"
#include "peinit/sys/module_decompress.h"
#include "peinit/sys/module_elf.h"
#include "peinit/sys/package.h"

namespace peinit::image {

namespace {

bool IsDir(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool IsFile(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Result<std::string> ReadText(const std::string& path) {
    std::ifstream in(path);
    if (!in) return ErrnoErr(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string Trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
    size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    return s.substr(i);
}

std::vector<std::string> ListDir(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (struct dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

std::string JoinPath(const std::string& dir, const std::string& rel) {
    std::string out = (std::filesystem::path(dir) / rel).lexically_normal().string();
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    return out;
}

Result<KernelTree> OpenKernelTree(const std::string& dir_in, const std::string& kver) {
    if (dir_in.empty()) return Err("no kernel directory given");
    std::string dir = JoinPath(dir_in, ".");
    if (!IsDir(dir)) return Err("kernel directory " + dir + " does not exist");
    KernelTree k;
    k.dir = dir;
    ModuleTreeLayout layout = PEINIT_TRY(ReadModuleTreeLayout(dir));
    k.module_root = JoinPath(layout.root, ".");
    std::string lm = JoinPath(k.module_root, "lib/modules");
    if (!kver.empty()) {
        if (layout.kver && *layout.kver != kver)
            return Err("kernel directory " + dir + " holds kernel " + *layout.kver + " (" +
                       JoinPath(dir, "kver") + "), not " + kver);
        k.kver = kver;
        if (!IsDir(JoinPath(lm, kver))) {
            std::vector<std::string> releases;
            for (const auto& n : ListDir(lm))
                if (IsDir(lm + "/" + n)) releases.push_back(n);
            return Err("kernel " + kver + " is not installed in " + dir + ": " +
                       JoinPath(lm, kver) + " does not exist (installed: " +
                       (releases.empty() ? std::string("none") : Join(releases, ", ")) + ")");
        }
    } else if (layout.kver) {
        k.kver = *layout.kver;
    } else {
        std::vector<std::string> releases;
        for (const auto& n : ListDir(lm))
            if (IsDir(lm + "/" + n)) releases.push_back(n);
        if (releases.size() != 1)
            return Err("kernel directory " + dir + " has no kver file and " +
                       std::to_string(releases.size()) + " releases under " + lm);
        k.kver = releases[0];
    }
    k.modules_dir = JoinPath(lm, k.kver);
    if (!IsDir(k.modules_dir))
        return Err("kernel release " + k.kver + " has no modules tree: " + k.modules_dir +
                   " does not exist");
    if (!IsFile(k.modules_dir + "/modules.dep.bin"))
        return Err(k.modules_dir + " has no depmod indexes (modules.dep.bin); run depmod -b " +
                   k.module_root + " " + k.kver);
    if (IsFile(JoinPath(dir, "bzImage")))
        k.image = JoinPath(dir, "bzImage");
    else if (IsFile(JoinPath(dir, "boot/vmlinuz-" + k.kver)))
        k.image = JoinPath(dir, "boot/vmlinuz-" + k.kver);
    if (IsFile(JoinPath(dir, "boot/config-" + k.kver)))
        k.config = JoinPath(dir, "boot/config-" + k.kver);
    else if (IsFile(JoinPath(dir, "config")))
        k.config = JoinPath(dir, "config");
    return k;
}

std::string KernelConfigValue(const KernelTree& kernel, const std::string& option) {
    if (kernel.config.empty()) return "";
    std::ifstream in(kernel.config);
    std::string line;
    const std::string prefix = option + "=";
    while (std::getline(in, line))
        if (line.compare(0, prefix.size(), prefix) == 0) return line.substr(prefix.size());
    return "";
}

namespace {

// The kernel ignores a parameter a module does not declare (a warning in its log, then the
// module loads): a unit's options naming one would only show at boot, as a module that
// "loaded" without its setting. Checked against the module's own .modinfo (parm=, parmtype=);
// `dyndbg` is accepted by every module. The error names the request's origin (unit file:line).
Result<void> CheckModuleParameters(const PlanEntry& e, const PlanInput& input) {
    auto bytes = ReadFileOnce(e.path);
    if (!bytes) return bytes.error();
    auto image = ModuleImageOf(e.path, *bytes);
    if (!image) return image.error();
    auto info = ReadModuleElf(image->bytes());
    if (!info) return info.error().Context(e.path + ": ");
    if (!*info) return Ok();  // not ELF: the package check says so
    std::vector<std::string> unknown;
    for (const auto& p : TokenizeCmdline(e.options)) {
        const std::string name = NormalizeModuleName(p.key);
        if (name == "dyndbg") continue;
        const auto& params = (*info)->parameters;
        if (std::none_of(params.begin(), params.end(), [&](const std::string& q) {
                return NormalizeModuleName(q) == name;
            })) {
            unknown.push_back("\"" + p.key + "\"");
        }
    }
    if (unknown.empty()) return Ok();
    std::vector<std::string> origins;
    for (std::size_t r : e.direct) origins.push_back(input.requests[r].origin.name);
    const auto& params = (*info)->parameters;
    return Err((origins.empty() ? std::string("modprobe.d") : Join(origins, ", ")) + ": module " +
               e.name + " has no parameter " + Join(unknown, ", ") + " (options \"" + e.options +
               "\"; it has " + (params.empty() ? "none" : Join(params, ", ")) +
               "): the kernel would ignore it");
}

// Why a planned module is in the image: the origins of the requests that name it, else the
// first module that depends on it ("dependency of bridge").
std::vector<std::string> ChosenBy(const PlanEntry& e, const Plan& plan, const PlanInput& input) {
    std::vector<std::string> out;
    for (std::size_t r : e.direct) {
        const std::string& origin = input.requests[r].origin.name;
        if (std::find(out.begin(), out.end(), origin) == out.end()) out.push_back(origin);
    }
    if (!out.empty()) return out;
    for (const PlanEntry& other : plan.entries) {
        auto needs = [&](const std::vector<std::string>& deps) {
            return std::find(deps.begin(), deps.end(), e.name) != deps.end();
        };
        if (needs(other.hard_deps) || needs(other.soft_pre) || needs(other.soft_post)) {
            out.push_back("dependency of " + other.name);
            break;
        }
    }
    return out;
}

}  // namespace

Result<ModuleClosure> ResolveModuleClosure(const KernelTree& kernel,
                                           const std::vector<ModuleWant>& wants,
                                           const std::vector<ModuleDeny>& deny) {
    auto db = KmodDb::Open(kernel.module_root, kernel.kver);
    if (!db) return db.error().Context("kernel " + kernel.kver + ": ");

    std::vector<std::string> errors;
    PlanInput input;
    for (const ModuleWant& w : wants) {
        auto names = (*db)->Lookup(w.name);
        if (!names) return names.error().Context(w.origin + ": ");
        if (names->empty() && !w.optional) {
            errors.push_back(w.origin + ": unknown module \"" + w.name + "\": not in kernel " +
                             kernel.kver + " (" + kernel.modules_dir + ")");
            continue;
        }
        input.requests.push_back({w.name, RequestOrigin::Other(w.origin), w.options, w.optional});
    }
    if (!errors.empty()) return Err(Join(errors, "\n"));

    // What to ship: the plan without any deny list, so every module that might be needed is
    // there and the boot-time plan sees the whole graph.
    Plan plan = PEINIT_TRY(BuildPlan(**db, input));
    for (const auto& e : plan.errors) errors.push_back("module plan: " + e);
    if (!errors.empty()) return Err(Join(errors, "\n"));

    for (const PlanEntry& e : plan.entries) {
        if (e.status != ModuleStatus::kLoad || e.options.empty()) continue;
        if (auto r = CheckModuleParameters(e, input); !r) errors.push_back(r.error().message());
    }
    if (!errors.empty()) return Err(Join(errors, "\n"));

    ModuleClosure out;
    const std::string prefix = JoinPath(kernel.modules_dir, ".") + "/";
    std::set<std::string> builtins;
    for (const PlanEntry& e : plan.entries) {
        if (e.status == ModuleStatus::kBuiltin) {
            builtins.insert(e.name);
        } else if (e.status == ModuleStatus::kLoad) {
            const std::string path = JoinPath(e.path, ".");
            if (path.compare(0, prefix.size(), prefix) != 0)
                return Err("module " + e.name + " resolves outside " + kernel.modules_dir + ": " +
                           e.path);
            out.files.push_back({e.name, path.substr(prefix.size()), ChosenBy(e, plan, input)});
        }
    }
    std::sort(out.files.begin(), out.files.end(),
              [](const ModuleFile& a, const ModuleFile& b) { return a.rel_path < b.rel_path; });
    out.builtins.assign(builtins.begin(), builtins.end());

    // The same plan under the deny list: what peinit will refuse at boot.
    if (!deny.empty()) {
        for (const auto& d : deny) input.blacklist.push_back({d.name, d.source});
        Plan denied = PEINIT_TRY(BuildPlan(**db, input));
        out.warnings = denied.denied;
    }
    return out;
}

namespace {

// A temporary directory removed (recursively) on destruction.
class TempDir {
  public:
    Result<void> Create() {
        const char* tmp = std::getenv("TMPDIR");
        std::string tmpl =
            std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/peinit-image.XXXXXX";
        if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoErr("mkdtemp " + tmpl);
        path_ = tmpl;
        return Ok();
    }
    ~TempDir() {
        if (!path_.empty()) Remove(path_);
    }
    const std::string& path() const { return path_; }

  private:
    static void Remove(const std::string& p) {
        struct stat st;
        if (::lstat(p.c_str(), &st) != 0) return;
        if (S_ISDIR(st.st_mode)) {
            for (const auto& n : ListDir(p)) Remove(p + "/" + n);
            ::rmdir(p.c_str());
        } else {
            ::unlink(p.c_str());
        }
    }
    std::string path_;
};

Result<void> MakeDirs(const std::string& path) {
    for (size_t pos = 1; pos != std::string::npos;) {
        pos = path.find('/', pos + 1);
        std::string p = path.substr(0, pos);
        if (::mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoErr("mkdir " + p);
    }
    return Ok();
}

Result<void> WriteText(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) return ErrnoErr(path);
    out << text;
    out.close();
    if (!out) return ErrnoErr(path);
    return Ok();
}

}  // namespace

Result<void> AddModuleIndexesToTree(
    ImageTree& tree, const KernelTree& kernel, const ModuleClosure& closure, bool loose_files,
    const std::function<Result<void>(const std::string& root)>& in_tree) {
    const std::string image_dir = "lib/modules/" + kernel.kver;
    PEINIT_TRY(tree.AddDirectory(image_dir));

    TempDir staging;
    PEINIT_TRY(staging.Create());
    const std::string stage_mod = staging.path() + "/lib/modules/" + kernel.kver;
    PEINIT_TRY(MakeDirs(stage_mod));
    const std::string conf_dir = staging.path() + "/depmod.d";
    PEINIT_TRY(MakeDirs(conf_dir));

    std::set<std::string> shipped;
    for (const ModuleFile& m : closure.files) {
        std::string src = kernel.modules_dir + "/" + m.rel_path;
        std::string dst = stage_mod + "/" + m.rel_path;
        PEINIT_TRY(MakeDirs(dst.substr(0, dst.rfind('/'))));
        if (::symlink(src.c_str(), dst.c_str()) != 0) return ErrnoErr("symlink " + dst);
        // An empty placeholder: libkmod's dependency parser (kmod_module_parse_depline ->
        // kmod_module_new_from_path) stat()s every dependency's path and silently drops one that
        // does not exist, so the path must exist; the bytes are in the signed package.
        if (loose_files) {
            PEINIT_TRY(tree.AddHostFile(image_dir + "/" + m.rel_path, src, 0644));
        } else {
            PEINIT_TRY(tree.AddFile(image_dir + "/" + m.rel_path, "", 0644,
                                    "placeholder for " + m.name + " (bytes in the signed package)"));
        }
        shipped.insert(m.rel_path);
    }

    // modules.order: the kernel's order restricted to what we ship (then anything it lacks, in
    // path order), so modules.dep does not depend on readdir order.
    std::string order;
    std::set<std::string> ordered;
    if (IsFile(kernel.modules_dir + "/modules.order")) {
        std::stringstream ss(PEINIT_TRY(ReadText(kernel.modules_dir + "/modules.order")));
        std::string line;
        while (std::getline(ss, line)) {
            line = Trim(line);
            if (shipped.count(line) != 0 && ordered.insert(line).second) order += line + "\n";
        }
    }
    for (const auto& rel : shipped)
        if (ordered.count(rel) == 0) order += rel + "\n";
    PEINIT_TRY(WriteText(stage_mod + "/modules.order", order));

    // Built-ins: peinit and libkmod in the image must know them to treat them as loaded.
    for (const char* f : {"modules.builtin", "modules.builtin.modinfo"}) {
        std::string src = kernel.modules_dir + "/" + f;
        if (IsFile(src)) PEINIT_TRY(WriteText(stage_mod + "/" + f, PEINIT_TRY(ReadText(src))));
    }

    auto res = PEINIT_TRY(RunCapture({"depmod", "-b", staging.path(), "-C", conf_dir, kernel.kver},
                                     /*merge_stderr=*/true));
    if (res.status != 0)
        return Err("depmod -b " + staging.path() + " " + kernel.kver + " failed (status " +
                   std::to_string(res.status) + "): " + Trim(res.output));

    for (const auto& n : ListDir(stage_mod)) {
        std::string p = stage_mod + "/" + n;
        struct stat st;
        if (::lstat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n.rfind("modules.", 0) != 0) continue;
        PEINIT_TRY(tree.AddHostFile(image_dir + "/" + n, p, 0644));
    }
    if (!in_tree) return Ok();
    for (const auto& [path, entry] : tree.entries()) {
        if (entry.type != EntryType::kFile ||
            !(path.starts_with("etc/modprobe.d/") || path.starts_with("lib/modprobe.d/")))
            continue;
        const std::string dst = staging.path() + "/" + path;
        PEINIT_TRY(MakeDirs(dst.substr(0, dst.rfind('/'))));
        PEINIT_TRY(WriteText(dst, entry.data));
    }
    return in_tree(staging.path());
}

namespace {

void RemoveTree(const std::string& p) {
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        for (const auto& n : ListDir(p)) RemoveTree(p + "/" + n);
        ::rmdir(p.c_str());
    } else {
        ::unlink(p.c_str());
    }
}

// Module names of every .ko modules.dep lists ("kernel/fs/ext4/ext4.ko: ..." -> ext4).
Result<std::set<std::string>> TreeModuleNames(const KernelTree& kernel) {
    std::set<std::string> out;
    std::stringstream ss(PEINIT_TRY(ReadText(kernel.modules_dir + "/modules.dep")));
    std::string line;
    while (std::getline(ss, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string path = line.substr(0, colon);
        auto slash = path.rfind('/');
        std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
        auto dot = base.find(".ko");
        if (dot == std::string::npos) continue;
        out.insert(NormalizeModuleName(base.substr(0, dot)));
    }
    return out;
}

}  // namespace

StagedKernelTree::~StagedKernelTree() {
    if (!staging.empty()) RemoveTree(staging);
}

Result<std::unique_ptr<StagedKernelTree>> StageExtraModules(const KernelTree& kernel,
                                                            const std::vector<ExtraModule>& extra) {
    auto staged = std::make_unique<StagedKernelTree>();
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/peinit-extra.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return ErrnoErr("mkdtemp " + tmpl);
    staged->staging = tmpl;
    const std::string mod_dir = tmpl + "/lib/modules/" + kernel.kver;
    PEINIT_TRY(MakeDirs(mod_dir + "/extra"));
    const std::string conf_dir = tmpl + "/depmod.d";
    PEINIT_TRY(MakeDirs(conf_dir));

    // The kernel's module directories as symlinks (depmod follows them), its built-in lists
    // and order as copies; the indexes are regenerated below.
    for (const auto& n : ListDir(kernel.modules_dir)) {
        std::string src = kernel.modules_dir + "/" + n;
        if (n == "build" || n == "source" || n == "extra") continue;
        if (IsDir(src)) {
            if (::symlink(src.c_str(), (mod_dir + "/" + n).c_str()) != 0)
                return ErrnoErr("symlink " + mod_dir + "/" + n);
        } else if (n == "modules.order" || n == "modules.builtin" ||
                   n == "modules.builtin.modinfo") {
            PEINIT_TRY(WriteText(mod_dir + "/" + n, PEINIT_TRY(ReadText(src))));
        }
    }
    if (IsDir(kernel.modules_dir + "/extra"))
        return Err(kernel.modules_dir + "/extra exists; extra_modules needs that directory");

    std::set<std::string> known = PEINIT_TRY(TreeModuleNames(kernel));
    std::set<std::string> seen;
    std::vector<std::string> errors;
    for (const auto& m : extra) {
        std::string base = m.path.substr(m.path.rfind('/') + 1);
        std::string name = NormalizeModuleName(base.substr(0, base.size() - 3));
        if (!IsFile(m.path) || !IsElfRelocatable(m.path)) {
            errors.push_back(m.origin + ": extra module " + m.path +
                             " is not a kernel module (an ELF relocatable .ko)");
        } else if (known.count(name) != 0) {
            errors.push_back(m.origin + ": extra module " + name + " (" + m.path +
                             ") is already in kernel " + kernel.kver +
                             "'s tree; an extra module cannot replace an in-tree one");
        } else if (!seen.insert(name).second) {
            errors.push_back(m.origin + ": extra module " + name + " is listed twice");
        } else if (::symlink(m.path.c_str(), (mod_dir + "/extra/" + base).c_str()) != 0) {
            return ErrnoErr("symlink " + mod_dir + "/extra/" + base);
        }
    }
    if (!errors.empty()) return Err(Join(errors, "\n"));

    auto res = PEINIT_TRY(RunCapture({"depmod", "-b", tmpl, "-C", conf_dir, kernel.kver},
                                     /*merge_stderr=*/true));
    if (res.status != 0)
        return Err("depmod over the kernel tree with extra_modules failed (status " +
                   std::to_string(res.status) + "): " + Trim(res.output));
    staged->tree = kernel;
    staged->tree.module_root = tmpl;
    staged->tree.modules_dir = mod_dir;
    return staged;
}

}  // namespace peinit::image
