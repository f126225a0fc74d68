#pragma once

// RAII wrapper over libkmod, opened on a module tree under any root directory.
//
// `Kmod::Open(root, kver)` reads ROOT/lib/modules/KVER (depmod's indexes) with the modprobe.d
// configuration of that root only (ROOT/etc/modprobe.d, ROOT/run/modprobe.d,
// ROOT/lib/modprobe.d, highest priority first, as modprobe orders /etc, /run, /lib), so
// `peinit plan --root`, the image builder and the tests can resolve a tree that is not the
// running system. libkmod does all parsing (modules.dep, aliases, modules.builtin, modprobe.d);
// this file only adapts its answers.
//
// Two libkmod behaviours are corrected because they read the *running* system:
// - libkmod appends `mod.param=` and `modprobe.blacklist=` from /proc/cmdline to every context's
//   configuration. peinit takes the command line explicitly (PlanInput), so those entries are
//   removed here (they are always appended after the files' entries; a context opened with no
//   configuration files holds exactly them).
// - kmod_module_get_initstate() reads /sys/module. Whether a module is built in is decided from
//   the tree's modules.builtin index instead (libkmod's KMOD_FILTER_BUILTIN).
//
// Thread safety: libkmod is not thread-safe. A Kmod (and every KmodModule obtained from it) must
// be used by one thread at a time; give each thread its own Kmod or guard a shared one.

#include <libkmod.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/plan.h"
#include "peinit/core/result.h"

namespace peinit {

struct KmodCtxDeleter {
    void operator()(kmod_ctx* ctx) const noexcept { kmod_unref(ctx); }
};
struct KmodModuleDeleter {
    void operator()(kmod_module* mod) const noexcept { kmod_module_unref(mod); }
};
// A kmod_list whose entries are modules (kmod_module_new_from_lookup, get_dependencies, ...).
struct KmodModuleListDeleter {
    void operator()(kmod_list* list) const noexcept { kmod_module_unref_list(list); }
};
struct KmodConfigIterDeleter {
    void operator()(kmod_config_iter* iter) const noexcept { kmod_config_iter_free_iter(iter); }
};
using KmodCtxPtr = std::unique_ptr<kmod_ctx, KmodCtxDeleter>;
using KmodModulePtr = std::unique_ptr<kmod_module, KmodModuleDeleter>;
using KmodModuleListPtr = std::unique_ptr<kmod_list, KmodModuleListDeleter>;
using KmodConfigIterPtr = std::unique_ptr<kmod_config_iter, KmodConfigIterDeleter>;

// Where a deny entry of modprobe.d came from, e.g. "modprobe.d/fixture.conf:3 blacklist jbd2".
struct ConfigSource {
    std::filesystem::path file;  // absolute path on this machine
    int line = 0;                // 1-based; 0 when the line could not be located
    std::string text;            // the directive, e.g. "blacklist jbd2"
};

class Kmod;

// One module of a Kmod tree. Holds a libkmod reference; valid while its Kmod lives.
class KmodModule {
  public:
    // The module's canonical name (dashes turned into underscores, as the kernel names it).
    std::string Name() const;
    // Absolute path of the .ko file as modules.dep names it; empty for built-in modules and for
    // names the tree does not have (e.g. an alias or install command naming a missing module).
    std::string Path() const;
    // True when the tree's modules.builtin lists the module. Reads only the tree's index, never
    // /sys/module (unlike kmod_module_get_initstate).
    bool IsBuiltin() const;
    // Hard dependencies from modules.dep, in its order. depmod writes the full transitive
    // closure, so this is every module that must be loaded first.
    Result<std::vector<KmodModule>> Dependencies() const;
    // Soft dependencies (modprobe.d `softdep` and the modules' own `softdep=` modinfo, which
    // depmod copies into modules.softdep), each name resolved like a lookup (so an alias such as
    // `crc32c` yields every module providing it). Names that resolve to nothing are dropped, as
    // modprobe drops them.
    struct SoftDeps {
        std::vector<KmodModule> pre;
        std::vector<KmodModule> post;
    };
    Result<SoftDeps> SoftDependencies() const;
    // `options NAME ...` from the tree's modprobe.d, in file order; never the running system's
    // /proc/cmdline.
    std::string Options() const;
    // The modprobe.d `install NAME ...` command, if any.
    std::optional<std::string> InstallCommand() const;

    kmod_module* get() const { return mod_.get(); }

  private:
    friend class Kmod;
    KmodModule(const Kmod* owner, KmodModulePtr mod) : owner_(owner), mod_(std::move(mod)) {}

    const Kmod* owner_;
    KmodModulePtr mod_;
};

class Kmod {
  public:
    // Opens ROOT/lib/modules/KVER. Fails when that directory or its modules.dep index is missing.
    static Result<std::unique_ptr<Kmod>> Open(const std::filesystem::path& root,
                                              std::string_view kver);

    // The modprobe.d directories consulted, highest priority first.
    static std::vector<std::filesystem::path> ConfigDirs(const std::filesystem::path& root);

    const std::filesystem::path& root() const { return root_; }
    const std::filesystem::path& module_dir() const { return module_dir_; }

    // Resolves a module name or alias the way modprobe does (modprobe.d aliases, modules.dep
    // names, symbol:, install commands, modules.alias, modules.builtin); empty when nothing
    // matches.
    Result<std::vector<KmodModule>> Lookup(std::string_view name_or_alias) const;
    // The module called `name` (normalised), whether or not the tree has it.
    Result<KmodModule> FromName(std::string_view name) const;

    // modprobe.d `blacklist` entries (module names, in file order), without /proc/cmdline's
    // `modprobe.blacklist=`.
    const std::vector<std::string>& Blacklist() const { return blacklist_; }
    bool IsBlacklisted(std::string_view name) const;
    // libkmod's error messages since the last call (it otherwise prints them to stderr, which
    // PID 1 does not own), e.g. a modules.dep line naming a .ko that is not there: libkmod then
    // drops that dependency from Dependencies(), so callers should report these.
    std::vector<std::string> TakeDiagnostics() const;
    // Which configuration file holds `directive` ("blacklist" or "install") for module `name`,
    // found by asking libkmod about each file on its own. nullopt when no file does.
    std::optional<ConfigSource> FindSource(std::string_view directive, std::string_view name) const;

  private:
    friend class KmodModule;
    Kmod() = default;

    std::filesystem::path root_;
    std::filesystem::path module_dir_;
    std::vector<std::string> config_dir_strings_;
    KmodCtxPtr ctx_;
    // A context with no configuration files: what libkmod adds from /proc/cmdline.
    KmodCtxPtr cmdline_ctx_;
    std::vector<std::string> blacklist_;
    // Heap-allocated so its address, given to libkmod's log callback, survives moves.
    std::unique_ptr<std::vector<std::string>> diagnostics_ =
        std::make_unique<std::vector<std::string>>();
};

// ModuleDb (peinit/core/plan.h) backed by a Kmod tree: what `peinit plan` and the boot-time
// module stage resolve against. Same thread-safety rule as Kmod.
class KmodDb final : public ModuleDb {
  public:
    explicit KmodDb(std::unique_ptr<Kmod> kmod) : kmod_(std::move(kmod)) {}
    static Result<std::unique_ptr<KmodDb>> Open(const std::filesystem::path& root,
                                                std::string_view kver);

    Result<std::vector<std::string>> Lookup(std::string_view name_or_alias) override;
    Result<ModuleRecord> Describe(std::string_view name) override;
    std::vector<std::string> TakeWarnings() override { return kmod_->TakeDiagnostics(); }

    const Kmod& kmod() const { return *kmod_; }

  private:
    // Formats a deny source relative to the root, e.g. "modprobe.d/fixture.conf:3 blacklist x".
    std::string DescribeSource(std::string_view directive, std::string_view name,
                               std::string_view fallback) const;

    std::unique_ptr<Kmod> kmod_;
};

// True for the install-command idioms that mean "never load": a single word whose base name is
// `false` or `true` (`/bin/false`, `/usr/bin/false`, `false`, and the CIS-benchmark
// `/bin/true`, which makes modprobe report success without loading anything).
bool IsDenyInstallCommand(std::string_view command);

}  // namespace peinit
