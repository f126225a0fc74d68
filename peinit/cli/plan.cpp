// `peinit plan`: prints the boot-time module plan for a module tree without loading anything.

#include "peinit/core/boot_plan.h"

#include <algorithm>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "peinit/cli/commands.h"
#include "peinit/core/args.h"
#include "peinit/core/cmdline.h"
#include "peinit/core/hive.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/kernel_release.h"
#include "peinit/sys/kmod.h"

namespace peinit::cli {

namespace {

namespace fs = std::filesystem;

constexpr int kExitOk = 0;
constexpr int kExitUnresolved = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    R"(usage: peinit plan [--root DIR] [--kver KVER] [--units DIR ...] [--hive FILE]
                   [--cmdline TEXT] [--module NAME ...] [--json | --compact]

Resolves the boot-time module set against DIR/lib/modules/KVER (depmod indexes, via libkmod)
and DIR's modprobe.d, and prints every module in load order with its path, hard and soft
dependencies, options and status. Nothing is loaded.

  --root DIR      root of the module tree (the image or system being planned; default /);
                  a kernel/build output directory (DIR/modroot/lib/modules) works too
  --kver KVER     kernel release (the folder under lib/modules); default DIR/kver when the
                  directory has one (kernel/build, kernel/debian-kernel), else `uname -r`
  --units DIR     unit files (*.toml, *.conf modules-load lists) whose modules to plan
                  (repeatable; default DIR/etc/peinit/units when it exists)
  --hive FILE     registry hive whose Blacklist applies (default DIR/etc/peinit/hive.toml
                  when it exists; ownership is not checked offline)
  --cmdline TEXT  kernel command line: modules_load=, modprobe.blacklist=, mod.param=
  --module NAME   a module name or alias to plan (repeatable)
  --json          machine-readable output: one object with "version": 1, "root", "kver",
                  "ok", "modules" (the fields above, in load order), "warnings", "errors"
  --compact       one line per module in load order, like `modprobe --show-depends`:
                  "insmod PATH OPTIONS", "builtin NAME", "# blacklisted NAME: SOURCE", ...
  --help          this text

Requests are planned in this order: units (in their load order), modules_load=, --module.

Exit status: 0 every requested module resolves or is kept out by a deny list (a warning: the
policy at work), 1 something is missing or in a dependency cycle, 2 usage or I/O error.
)";

struct Options {
    fs::path root = "/";
    std::string kver;
    std::vector<std::string> units;
    std::optional<std::string> hive;
    std::optional<std::string> cmdline;
    std::vector<std::string> modules;
    bool json = false;
    bool compact = false;
};

constexpr args::OptionSpec kOptions[] = {
    {"--root", args::Arity::kValue},  {"--kver", args::Arity::kValue},
    {"--units", args::Arity::kList},  {"--hive", args::Arity::kValue},
    {"--cmdline", args::Arity::kValue}, {"--module", args::Arity::kList},
    {"--json"}, {"--compact"},
};

Result<Options> ReadOptions(const args::Parsed& parsed) {
    if (!parsed.operands.empty()) return Err(args::UnexpectedOperand(parsed.operands[0]));
    Options opts;
    if (auto root = parsed.Value("--root")) opts.root = *root;
    opts.kver = parsed.Value("--kver").value_or("");
    opts.units = parsed.Values("--units");
    opts.hive = parsed.Value("--hive");
    opts.cmdline = parsed.Value("--cmdline");
    opts.modules = parsed.Values("--module");
    opts.json = parsed.Has("--json");
    opts.compact = parsed.Has("--compact");
    if (opts.json && opts.compact) return Err("--json and --compact exclude each other");
    return opts;
}

// Fills `input` with the boot-time module stage's collector (CollectBootPlanInput), plus --module.
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
    UnitSet units;
    if (!unit_dirs.empty()) {
        UnitLoad load = LoadUnitDirs(unit_dirs);
        if (!load.errors.empty()) {
            for (const auto& e : load.errors) std::cerr << e.ToString() << "\n";
            std::cerr << "peinit plan: unit errors (see `peinit check`)\n";
            return false;
        }
        units = std::move(load.units);
    }

    Hive hive;  // absent: no Blacklist
    std::string hive_path = opts.hive.value_or((opts.root / "etc/peinit/hive.toml").string());
    if (opts.hive || fs::exists(hive_path, ec)) {
        // Offline the files belong to whoever built the tree, so ownership is not checked.
        hive = LoadHive(hive_path, {.check_trust = false});
        if (hive.state == HiveState::kAbsent && opts.hive) {
            std::cerr << "peinit plan: " << hive_path << ": no such file\n";
            return false;
        }
        for (const auto& e : hive.errors) {
            std::cerr << "peinit plan: warning: " << e.ToString()
                      << " (the boot would use the hardened fallback)\n";
        }
    }
    input = CollectBootPlanInput(units, ComputeEffectivePolicy(hive, cmd), cmd).input;
    for (const auto& m : opts.modules) {
        input.requests.push_back({m, RequestOrigin::Other("--module"), "", false});
    }
    return true;
}

}  // namespace

int Plan(std::span<char* const> argv) noexcept {
    try {
        auto parsed = args::Parse(argv, kOptions);
        if (!parsed) return args::UsageError("peinit plan", parsed.error().message(), kUsage);
        if (parsed->help) {
            std::cout << kUsage;
            return kExitOk;
        }
        auto opts = ReadOptions(*parsed);
        if (!opts) return args::UsageError("peinit plan", opts.error().message(), kUsage);
        PlanInput input;
        if (!BuildInput(*opts, input)) return kExitUsage;

        // Where lib/modules is (kernel/build keeps it in modroot/) and which release, as
        // modprobe would pick it when none is given.
        auto layout = ReadModuleTreeLayout(opts->root.string());
        if (!layout) {
            std::cerr << "peinit plan: " << layout.error().message() << "\n";
            return kExitUsage;
        }
        if (opts->kver.empty()) {
            auto running = RunningKernelRelease();
            opts->kver = layout->kver ? *layout->kver : running ? *running : "";
        }
        auto db = KmodDb::Open(layout->root, opts->kver);
        if (!db) {
            std::cerr << "peinit plan: " << db.error().message() << "\n";
            return kExitUsage;
        }
        auto plan = BuildPlan(**db, input);
        if (!plan) {
            std::cerr << "peinit plan: " << plan.error().message() << "\n";
            return kExitUsage;
        }
        PlanView view{"peinit plan", opts->root.string(), opts->kver, (*db)->kmod().root()};
        std::cout << (opts->json      ? RenderPlanJson(*plan, view)
                      : opts->compact ? RenderPlanCompact(*plan, view)
                                      : RenderPlanText(*plan, view));
        std::cout.flush();
        return plan->ok() ? kExitOk : kExitUnresolved;
    } catch (const std::exception& e) {
        std::cerr << "peinit plan: " << e.what() << "\n";
        return kExitUsage;
    }
}

}  // namespace peinit::cli
