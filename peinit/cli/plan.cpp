// `peinit plan`: prints the boot-time module plan for a module tree without loading anything.

#include "peinit/core/plan.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "peinit/cli/commands.h"
#include "peinit/core/cmdline.h"
#include "peinit/core/hive.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/kmod.h"

namespace peinit::cli {

namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitUnresolved = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    R"(usage: peinit plan --root DIR --kver KVER [--units DIR ...] [--hive FILE]
                   [--cmdline TEXT] [--module NAME ...] [--json]

Resolves the boot-time module set against DIR/lib/modules/KVER (depmod indexes, via libkmod)
and DIR's modprobe.d, and prints every module in load order with its path, hard and soft
dependencies, options and status. Nothing is loaded.

  --root DIR      root of the module tree (the image or system being planned)
  --kver KVER     kernel release (the folder under DIR/lib/modules)
  --units DIR     unit files (*.toml, *.conf modules-load lists) whose modules to plan
                  (repeatable; default DIR/etc/peinit/units when it exists)
  --hive FILE     registry hive whose Blacklist applies (default DIR/etc/peinit/hive.toml
                  when it exists; ownership is not checked offline)
  --cmdline TEXT  kernel command line: modules_load=, modprobe.blacklist=, mod.param=
  --module NAME   a module name or alias to plan (repeatable)
  --json          machine-readable output
  --help          this text

Requests are planned in this order: units (in their load order), modules_load=, --module.

Exit status: 0 every requested module resolves or is kept out by a deny list (a warning: the
policy at work), 1 something is missing or in a dependency cycle, 2 usage or I/O error.
)";

struct Options {
    fs::path root;
    std::string kver;
    std::vector<std::string> units;
    std::optional<std::string> hive;
    std::optional<std::string> cmdline;
    std::vector<std::string> modules;
    bool json = false;
    bool help = false;
};

Result<Options> ParseArgs(int argc, char** argv) {
    Options opts;
    bool have_root = false;
    for (int i = 0; i < argc; ++i) {
        std::string arg = argv[i];
        std::optional<std::string> inline_value;
        if (auto eq = arg.find('='); arg.starts_with("--") && eq != std::string::npos) {
            inline_value = arg.substr(eq + 1);
            arg.resize(eq);
        }
        auto value = [&]() -> Result<std::string> {
            if (inline_value) return *inline_value;
            if (i + 1 >= argc) return Err(arg + " needs a value");
            return std::string(argv[++i]);
        };
        if (arg == "--help" || arg == "-h") {
            opts.help = true;
        } else if (arg == "--json") {
            opts.json = true;
        } else if (arg == "--root") {
            opts.root = PEINIT_TRY(value());
            have_root = true;
        } else if (arg == "--kver") {
            opts.kver = PEINIT_TRY(value());
        } else if (arg == "--units") {
            opts.units.push_back(PEINIT_TRY(value()));
        } else if (arg == "--hive") {
            opts.hive = PEINIT_TRY(value());
        } else if (arg == "--cmdline") {
            opts.cmdline = PEINIT_TRY(value());
        } else if (arg == "--module") {
            opts.modules.push_back(PEINIT_TRY(value()));
        } else {
            return Err("unknown argument " + std::string(argv[i]));
        }
    }
    if (opts.help) return opts;
    if (!have_root) return Err("--root is required");
    if (opts.kver.empty()) return Err("--kver is required");
    return opts;
}

std::string JsonString(std::string_view s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out + "\"";
}

std::string JsonList(const std::vector<std::string>& items) {
    std::string out = "[";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += JsonString(items[i]);
    }
    return out + "]";
}

std::string Words(const std::vector<std::string>& items) {
    if (items.empty()) return "-";
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : " ") + s;
    return out;
}

// The .ko path as the planned system sees it ("/lib/modules/..."), independent of where the
// tree sits on this machine.
std::string TargetPath(const fs::path& root, const std::string& path) {
    if (path.empty()) return "";
    fs::path rel = fs::path(path).lexically_relative(root);
    if (rel.empty() || rel.native().starts_with("..")) return path;
    return "/" + rel.string();
}

std::string StatusText(const PlanEntry& e) {
    std::string s(StatusName(e.status));
    if (!e.reason.empty()) s += ": " + e.reason;
    return s;
}

std::vector<std::string> WaitNames(const peinit::Plan& plan, const PlanEntry& e) {
    std::vector<std::string> out;
    for (std::size_t i : e.waits_for) out.push_back(plan.entries[i].name);
    return out;
}

void PrintText(std::ostream& out, const Options& opts, const fs::path& root,
               const peinit::Plan& plan) {
    std::size_t load = 0, builtin = 0;
    for (const auto& e : plan.entries) {
        load += e.status == ModuleStatus::kLoad;
        builtin += e.status == ModuleStatus::kBuiltin;
    }
    out << "peinit plan: root " << opts.root.string() << ", kernel " << opts.kver << "\n";
    out << load << " to load, " << builtin << " built in, " << plan.entries.size() - load - builtin
        << " not loaded\n";
    std::size_t n = 0;
    for (const auto& e : plan.entries) {
        out << "\n" << ++n << ". " << e.name << "\n";
        out << "   status:     " << StatusText(e) << "\n";
        if (!e.path.empty()) out << "   path:       " << TargetPath(root, e.path) << "\n";
        out << "   hard deps:  " << Words(e.hard_deps) << "\n";
        out << "   soft pre:   " << Words(e.soft_pre) << "\n";
        out << "   soft post:  " << Words(e.soft_post) << "\n";
        out << "   options:    " << (e.options.empty() ? "-" : e.options) << "\n";
        if (e.Loadable()) out << "   waits for:  " << Words(WaitNames(plan, e)) << "\n";
        for (const auto& chain : e.requested_by) out << "   wanted by:  " << chain << "\n";
        if (!e.ignored_install_command.empty()) {
            out << "   note:       modprobe.d install command not run by peinit: "
                << e.ignored_install_command << "\n";
        }
    }
    if (!plan.warnings.empty() || !plan.denied.empty()) {
        out << "\nwarnings:\n";
        for (const auto& w : plan.warnings) out << "  " << w << "\n";
        for (const auto& w : plan.denied) out << "  " << w << "\n";
    }
    if (!plan.errors.empty()) {
        out << "\nerrors:\n";
        for (const auto& err : plan.errors) out << "  " << err << "\n";
    }
}

void PrintJson(std::ostream& out, const Options& opts, const fs::path& root,
               const peinit::Plan& plan) {
    out << "{\n  \"root\": " << JsonString(opts.root.string())
        << ",\n  \"kver\": " << JsonString(opts.kver)
        << ",\n  \"ok\": " << (plan.ok() ? "true" : "false") << ",\n  \"modules\": [";
    for (std::size_t i = 0; i < plan.entries.size(); ++i) {
        const auto& e = plan.entries[i];
        out << (i ? ",\n" : "\n") << "    {\"name\": " << JsonString(e.name)
            << ", \"status\": " << JsonString(StatusName(e.status))
            << ", \"reason\": " << JsonString(e.reason)
            << ", \"path\": " << JsonString(TargetPath(root, e.path))
            << ", \"hard_deps\": " << JsonList(e.hard_deps)
            << ", \"soft_pre\": " << JsonList(e.soft_pre)
            << ", \"soft_post\": " << JsonList(e.soft_post)
            << ", \"options\": " << JsonString(e.options)
            << ", \"waits_for\": " << JsonList(WaitNames(plan, e))
            << ", \"requested_by\": " << JsonList(e.requested_by)
            << ", \"ignored_install_command\": " << JsonString(e.ignored_install_command) << "}";
    }
    std::vector<std::string> warnings = plan.warnings;
    warnings.insert(warnings.end(), plan.denied.begin(), plan.denied.end());
    out << "\n  ],\n  \"warnings\": " << JsonList(warnings)
        << ",\n  \"errors\": " << JsonList(plan.errors) << "\n}\n";
}

// Fills `input` the way the boot-time module stage does: unit modules, modules_load=, then
// --module; the blacklist of the hive tightened by the command line; mod.param= options.
// Returns false (after printing why) when the units or the hive cannot be used.
bool BuildInput(const Options& opts, PlanInput& input) {
    Cmdline cmd = ParseCmdline(opts.cmdline.value_or(""));
    for (const auto& d : cmd.diagnostics) {
        std::cerr << "peinit plan: warning: kernel command line: " << d.ToString() << "\n";
    }

    std::vector<std::string> unit_dirs = opts.units;
    std::error_code ec;
    if (unit_dirs.empty() && fs::is_directory(opts.root / "etc/peinit/units", ec)) {
        unit_dirs.push_back((opts.root / "etc/peinit/units").string());
    }
    if (!unit_dirs.empty()) {
        UnitLoad load = LoadUnitDirs(unit_dirs);
        if (!load.errors.empty()) {
            for (const auto& e : load.errors) std::cerr << e.ToString() << "\n";
            std::cerr << "peinit plan: unit errors (see `peinit check`)\n";
            return false;
        }
        for (const auto& unit : load.units.units) {
            auto by = RequestOrigin::Unit(fs::path(unit.path).filename().string());
            for (const auto& m : unit.modules) {
                input.requests.push_back({m.name, by, m.options, m.optional});
            }
        }
    }
    for (const auto& name : cmd.modules_load) {
        input.requests.push_back({name, RequestOrigin::Cmdline(), "", false});
    }
    for (const auto& m : opts.modules) input.requests.push_back({m, RequestOrigin::Other("--module"), "", false});

    Hive hive;  // absent: no Blacklist
    std::string hive_path = opts.hive.value_or((opts.root / "etc/peinit/hive.toml").string());
    if (opts.hive || fs::exists(hive_path, ec)) {
        // Offline the files belong to whoever built the tree, so ownership is not checked.
        hive = LoadHive(hive_path, /*check_trust=*/false);
        if (hive.state == HiveState::kAbsent && opts.hive) {
            std::cerr << "peinit plan: " << hive_path << ": no such file\n";
            return false;
        }
        for (const auto& e : hive.errors) {
            std::cerr << "peinit plan: warning: " << e.ToString()
                      << " (the boot would use the hardened fallback)\n";
        }
    }
    EffectivePolicy policy = ComputeEffectivePolicy(hive, cmd);
    for (const auto& b : policy.blacklist) {
        std::string source = b.source == PolicySource::kCmdline
                                 ? "kernel command line modprobe.blacklist=" + b.module
                                 : "hive Machine\\System\\Modules\\Blacklist";
        input.blacklist.push_back({b.module, source});
    }
    std::vector<std::string> seen;
    for (const auto& mp : cmd.module_params) {
        if (std::find(seen.begin(), seen.end(), mp.module) != seen.end()) continue;
        seen.push_back(mp.module);
        input.options.push_back({mp.module, cmd.ModuleOptions(mp.module)});
    }
    return true;
}

}  // namespace

int Plan(int argc, char** argv) noexcept {
    try {
        auto opts = ParseArgs(argc, argv);
        if (!opts) {
            std::cerr << "peinit plan: " << opts.error().message() << "\n" << kUsage;
            return kExitUsage;
        }
        if (opts->help) {
            std::cout << kUsage;
            return kExitOk;
        }
        PlanInput input;
        if (!BuildInput(*opts, input)) return kExitUsage;

        auto db = KmodDb::Open(opts->root, opts->kver);
        if (!db) {
            std::cerr << "peinit plan: " << db.error().message() << "\n";
            return kExitUsage;
        }
        auto plan = BuildPlan(**db, input);
        if (!plan) {
            std::cerr << "peinit plan: " << plan.error().message() << "\n";
            return kExitUsage;
        }
        if (opts->json) {
            PrintJson(std::cout, *opts, (*db)->kmod().root(), *plan);
        } else {
            PrintText(std::cout, *opts, (*db)->kmod().root(), *plan);
        }
        std::cout.flush();
        return plan->ok() ? kExitOk : kExitUnresolved;
    } catch (const std::exception& e) {
        std::cerr << "peinit plan: " << e.what() << "\n";
        return kExitUsage;
    }
}

}  // namespace peinit::cli
