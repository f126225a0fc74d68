#include "peinit/sys/kmod.h"

#include <sys/stat.h>
#include <syslog.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <system_error>

namespace peinit {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> BlacklistOf(const kmod_ctx* ctx) {
    std::vector<std::string> out;
    KmodConfigIterPtr iter(kmod_config_get_blacklists(ctx));
    while (iter && kmod_config_iter_next(iter.get())) {
        out.emplace_back(kmod_config_iter_get_key(iter.get()));
    }
    return out;
}

std::vector<std::string> InstallKeysOf(const kmod_ctx* ctx) {
    std::vector<std::string> out;
    KmodConfigIterPtr iter(kmod_config_get_install_commands(ctx));
    while (iter && kmod_config_iter_next(iter.get())) {
        out.emplace_back(kmod_config_iter_get_key(iter.get()));
    }
    return out;
}

// libkmod appends /proc/cmdline's entries after those of the configuration files; `cmdline`
// holds exactly them (from a context without files). Removes them from the end of `all`.
std::vector<std::string> WithoutCmdline(std::vector<std::string> all,
                                        const std::vector<std::string>& cmdline) {
    if (cmdline.empty()) return all;
    if (all.size() >= cmdline.size() &&
        std::equal(cmdline.begin(), cmdline.end(), all.end() - cmdline.size())) {
        all.resize(all.size() - cmdline.size());
        return all;
    }
    // Not a suffix (a libkmod that orders differently): remove one occurrence of each.
    for (const auto& c : cmdline) {
        auto it = std::find(all.rbegin(), all.rend(), c);
        if (it != all.rend()) all.erase(std::next(it).base());
    }
    return all;
}

// libkmod's log callback: keeps errors (and worse) for TakeDiagnostics, drops the rest.
void CollectLog(void* data, int priority, const char* /*file*/, int /*line*/, const char* fn,
                const char* format, va_list args) {
    if (priority > LOG_ERR) return;
    char buf[1024];
    std::vsnprintf(buf, sizeof buf, format, args);
    std::string text = buf;
    // Drop libkmod's "ctx=0x..." so the same problem reads the same on every run.
    if (auto at = text.find("ctx=0x"); at != std::string::npos) {
        auto end = text.find(' ', at);
        text.erase(at, end == std::string::npos ? std::string::npos : end - at + 1);
    }
    while (!text.empty() && text.back() == '\n') text.pop_back();
    std::string message = std::string("libkmod: ") + (fn ? fn : "") + ": " + text;
    auto* out = static_cast<std::vector<std::string>*>(data);
    if (std::find(out->begin(), out->end(), message) == out->end()) out->push_back(message);
}

Result<KmodCtxPtr> NewContext(const fs::path& module_dir, const std::vector<std::string>& configs,
                              std::vector<std::string>* diagnostics) {
    std::vector<const char*> paths;
    for (const auto& c : configs) paths.push_back(c.c_str());
    paths.push_back(nullptr);  // an empty (non-null) list means "no configuration files"
    KmodCtxPtr ctx(kmod_new(module_dir.c_str(), paths.data()));
    if (!ctx) return ErrnoErr("kmod_new(" + module_dir.string() + ")", errno ? errno : ENOMEM);
    kmod_set_log_fn(ctx.get(), CollectLog, diagnostics);
    return ctx;
}

// The configuration files libkmod reads from `dirs` (highest priority first): names ending in
// .conf or .alias, not hidden, not directories; a name already seen in a higher-priority
// directory shadows later ones; read in name order. Used only to attribute entries to files.
std::vector<fs::path> EffectiveConfigFiles(const std::vector<fs::path>& dirs) {
    std::map<std::string, fs::path> by_name;
    for (const auto& dir : dirs) {
        std::error_code ec;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            std::string name = it->path().filename().string();
            bool conf = name.size() > 5 && name.ends_with(".conf");
            bool alias = name.size() > 6 && name.ends_with(".alias");
            if (name.starts_with(".") || !(conf || alias) || it->is_directory()) continue;
            by_name.emplace(name, it->path());  // keeps the first (highest-priority) one
        }
    }
    std::vector<fs::path> out;
    for (auto& [name, path] : by_name) out.push_back(path);
    return out;
}

// The first line of `file` that reads "<directive> <name> ..." (name compared normalised).
int FindLine(const fs::path& file, std::string_view directive, std::string_view name) {
    std::ifstream in(file);
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        std::istringstream words(line);
        std::string first, second;
        words >> first >> second;
        if (first == directive && NormalizeModuleName(second) == name) return number;
    }
    return 0;
}

}  // namespace

bool IsDenyInstallCommand(std::string_view command) {
    auto begin = command.find_first_not_of(" \t");
    if (begin == std::string_view::npos) return false;
    auto end = command.find_last_not_of(" \t;");
    std::string_view word = command.substr(begin, end - begin + 1);
    if (word.find_first_of(" \t") != std::string_view::npos) return false;
    auto slash = word.rfind('/');
    std::string_view base = slash == std::string_view::npos ? word : word.substr(slash + 1);
    return base == "false" || base == "true";
}

// --- KmodModule ---

std::string KmodModule::Name() const {
    const char* name = kmod_module_get_name(mod_.get());
    return name ? name : "";
}

std::string KmodModule::Path() const {
    const char* path = kmod_module_get_path(mod_.get());
    return path ? path : "";
}

bool KmodModule::IsBuiltin() const {
    // KMOD_FILTER_BUILTIN consults the tree's modules.builtin index (kmod_module_is_builtin);
    // the filter needs a list, so look the name up and see whether this module is filtered out.
    std::string name = Name();
    kmod_list* raw = nullptr;
    if (kmod_module_new_from_lookup(owner_->ctx_.get(), name.c_str(), &raw) < 0) return false;
    KmodModuleListPtr found(raw);
    kmod_list* kept_raw = nullptr;
    if (kmod_module_apply_filter(owner_->ctx_.get(), KMOD_FILTER_BUILTIN, found.get(), &kept_raw) <
        0) {
        return false;
    }
    KmodModuleListPtr kept(kept_raw);
    auto contains = [&](const kmod_list* list) {
        const kmod_list* l;
        kmod_list_foreach(l, list) {
            KmodModulePtr m(kmod_module_get_module(l));
            if (name == kmod_module_get_name(m.get())) return true;
        }
        return false;
    };
    return contains(found.get()) && !contains(kept.get());
}

Result<std::vector<KmodModule>> KmodModule::Dependencies() const {
    std::vector<KmodModule> out;
    KmodModuleListPtr deps(kmod_module_get_dependencies(mod_.get()));
    const kmod_list* l;
    kmod_list_foreach(l, deps.get()) {
        out.push_back(KmodModule(owner_, KmodModulePtr(kmod_module_get_module(l))));
    }
    return out;
}

Result<KmodModule::SoftDeps> KmodModule::SoftDependencies() const {
    kmod_list* pre_raw = nullptr;
    kmod_list* post_raw = nullptr;
    int err = kmod_module_get_softdeps(mod_.get(), &pre_raw, &post_raw);
    KmodModuleListPtr pre(pre_raw), post(post_raw);
    if (err < 0) return ErrnoErr("softdeps of " + Name(), -err);
    SoftDeps out;
    const kmod_list* l;
    kmod_list_foreach(l, pre.get()) {
        out.pre.push_back(KmodModule(owner_, KmodModulePtr(kmod_module_get_module(l))));
    }
    kmod_list_foreach(l, post.get()) {
        out.post.push_back(KmodModule(owner_, KmodModulePtr(kmod_module_get_module(l))));
    }
    return out;
}

std::string KmodModule::Options() const {
    const char* all = kmod_module_get_options(mod_.get());
    std::string options = all ? all : "";
    // libkmod joins every matching entry with one space, the /proc/cmdline ones last.
    kmod_module* raw = nullptr;
    if (kmod_module_new_from_name(owner_->cmdline_ctx_.get(), Name().c_str(), &raw) < 0) {
        return options;
    }
    KmodModulePtr in_cmdline(raw);
    const char* extra = kmod_module_get_options(in_cmdline.get());
    std::string suffix = extra ? extra : "";
    if (suffix.empty()) return options;
    if (options == suffix) return "";
    if (options.ends_with(" " + suffix)) options.resize(options.size() - suffix.size() - 1);
    return options;
}

std::optional<std::string> KmodModule::InstallCommand() const {
    const char* cmd = kmod_module_get_install_commands(mod_.get());
    if (!cmd) return std::nullopt;
    return std::string(cmd);
}

// --- Kmod ---

std::vector<fs::path> Kmod::ConfigDirs(const fs::path& root) {
    // libkmod's default order (etc, run, lib): earlier directories win on equal file names.
    return {root / "etc/modprobe.d", root / "run/modprobe.d", root / "lib/modprobe.d"};
}

Result<std::unique_ptr<Kmod>> Kmod::Open(const fs::path& root, std::string_view kver) {
    std::error_code ec;
    fs::path abs_root = fs::absolute(root, ec);
    if (ec) return Err("cannot resolve " + root.string() + ": " + ec.message());
    std::unique_ptr<Kmod> kmod(new Kmod());
    kmod->root_ = abs_root.lexically_normal();
    kmod->module_dir_ = kmod->root_ / "lib/modules" / std::string(kver);
    if (!fs::is_directory(kmod->module_dir_, ec)) {
        return Err(kmod->module_dir_.string() + ": no such module directory", ENOENT);
    }
    if (!fs::exists(kmod->module_dir_ / "modules.dep.bin", ec) &&
        !fs::exists(kmod->module_dir_ / "modules.dep", ec)) {
        return Err(kmod->module_dir_.string() + ": no modules.dep (run depmod -b)", ENOENT);
    }
    for (const auto& dir : ConfigDirs(kmod->root_)) kmod->config_dir_strings_.push_back(dir);
    kmod->ctx_ = PEINIT_TRY(
        NewContext(kmod->module_dir_, kmod->config_dir_strings_, kmod->diagnostics_.get()));
    kmod->cmdline_ctx_ = PEINIT_TRY(NewContext(kmod->module_dir_, {}, kmod->diagnostics_.get()));
    // Maps the indexes once instead of per lookup; libkmod falls back to the text files when
    // a binary index is missing, so a failure here is not fatal.
    (void)kmod_load_resources(kmod->ctx_.get());
    kmod->blacklist_ =
        WithoutCmdline(BlacklistOf(kmod->ctx_.get()), BlacklistOf(kmod->cmdline_ctx_.get()));
    return kmod;
}

Result<std::vector<KmodModule>> Kmod::Lookup(std::string_view name_or_alias) const {
    std::string key(name_or_alias);
    kmod_list* raw = nullptr;
    int err = kmod_module_new_from_lookup(ctx_.get(), key.c_str(), &raw);
    KmodModuleListPtr list(raw);
    if (err < 0) return ErrnoErr("looking up " + key, -err);
    std::vector<KmodModule> out;
    const kmod_list* l;
    kmod_list_foreach(l, list.get()) {
        out.push_back(KmodModule(this, KmodModulePtr(kmod_module_get_module(l))));
    }
    return out;
}

Result<KmodModule> Kmod::FromName(std::string_view name) const {
    std::string key(name);
    kmod_module* raw = nullptr;
    int err = kmod_module_new_from_name(ctx_.get(), key.c_str(), &raw);
    if (err < 0) return ErrnoErr("module " + key, -err);
    return KmodModule(this, KmodModulePtr(raw));
}

std::vector<std::string> Kmod::TakeDiagnostics() const {
    std::vector<std::string> out;
    out.swap(*diagnostics_);
    return out;
}

bool Kmod::IsBlacklisted(std::string_view name) const {
    std::string wanted = NormalizeModuleName(name);
    return std::find(blacklist_.begin(), blacklist_.end(), wanted) != blacklist_.end();
}

std::optional<ConfigSource> Kmod::FindSource(std::string_view directive,
                                             std::string_view name) const {
    std::string wanted = NormalizeModuleName(name);
    std::vector<fs::path> dirs(config_dir_strings_.begin(), config_dir_strings_.end());
    std::vector<std::string> cmdline = BlacklistOf(cmdline_ctx_.get());
    for (const auto& file : EffectiveConfigFiles(dirs)) {
        auto ctx = NewContext(module_dir_, {file.string()}, diagnostics_.get());
        if (!ctx) continue;
        std::vector<std::string> keys = directive == "install"
                                            ? InstallKeysOf(ctx->get())
                                            : WithoutCmdline(BlacklistOf(ctx->get()), cmdline);
        if (std::find(keys.begin(), keys.end(), wanted) == keys.end()) continue;
        ConfigSource src;
        src.file = file;
        src.line = FindLine(file, directive, wanted);
        src.text = std::string(directive) + " " + wanted;
        return src;
    }
    return std::nullopt;
}

// --- KmodDb ---

Result<std::unique_ptr<KmodDb>> KmodDb::Open(const fs::path& root, std::string_view kver) {
    auto kmod = PEINIT_TRY(Kmod::Open(root, kver));
    return std::make_unique<KmodDb>(std::move(kmod));
}

Result<std::vector<std::string>> KmodDb::Lookup(std::string_view name_or_alias) {
    auto mods = PEINIT_TRY(kmod_->Lookup(name_or_alias));
    std::vector<std::string> out;
    for (const auto& m : mods) {
        std::string name = m.Name();
        if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    }
    return out;
}

std::string KmodDb::DescribeSource(std::string_view directive, std::string_view name,
                                   std::string_view fallback) const {
    auto src = kmod_->FindSource(directive, name);
    if (!src) return "modprobe.d " + std::string(fallback);
    // "/etc/modprobe.d/fixture.conf:3": the file as the booted system sees it.
    std::string where = "/" + src->file.lexically_relative(kmod_->root()).string();
    if (src->line > 0) where += ":" + std::to_string(src->line);
    return where + " " + std::string(fallback);
}

Result<ModuleRecord> KmodDb::Describe(std::string_view name) {
    auto mod = PEINIT_TRY(kmod_->FromName(name));
    ModuleRecord rec;
    rec.name = mod.Name();
    rec.path = mod.Path();
    rec.builtin = rec.path.empty() && mod.IsBuiltin();
    if (!rec.path.empty()) {
        struct stat st;
        rec.file_present = ::stat(rec.path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    }
    for (const auto& dep : PEINIT_TRY(mod.Dependencies())) rec.hard_deps.push_back(dep.Name());
    auto soft = PEINIT_TRY(mod.SoftDependencies());
    for (const auto& m : soft.pre) rec.soft_pre.push_back(m.Name());
    for (const auto& m : soft.post) rec.soft_post.push_back(m.Name());
    rec.options = mod.Options();
    std::vector<std::string> denied;
    if (kmod_->IsBlacklisted(rec.name)) {
        denied.push_back(DescribeSource("blacklist", rec.name, "blacklist " + rec.name));
    }
    if (auto cmd = mod.InstallCommand()) {
        if (IsDenyInstallCommand(*cmd)) {
            denied.push_back(
                DescribeSource("install", rec.name, "install " + rec.name + " " + *cmd));
        } else {
            rec.install_command = *cmd;
        }
    }
    for (const auto& d : denied) {
        if (!rec.denied_by.empty()) rec.denied_by += "; ";
        rec.denied_by += d;
    }
    return rec;
}

}  // namespace peinit
