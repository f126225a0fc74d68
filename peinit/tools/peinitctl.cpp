// peinitctl: status and runtime API of peinit (spec §7, R-20, R-21; man page peinitctl(8), JSON
// schema peinit/tools/STATUS-JSON.md).
//
// Exit codes: 0 everything as configured (lock locked: 0); 1 a problem (something failed, or the
// lock state differs from what the policy asked; lock: not locked); 2 usage error, or nothing
// could be read at all.

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <iostream>
#include <string>
#include <vector>

#include "peinit/core/args.h"
#include "peinit/core/status.h"
#include "peinit/sys/linux_kernel.h"
#include "peinit/sys/status_sources.h"

namespace {

using peinit::Status;
using peinit::args::Arity;
using peinit::args::OptionSpec;

constexpr const char* kUsage =
    "usage: peinitctl [COMMAND] [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  status [--json] [--root DIR]         lock state, policy and boot-time modules (the\n"
    "                                       default when no command is given)\n"
    "  lock [--fallback]                    lock module loading now (needs SeTcbPrivilege)\n"
    "  modules [--failed] [--json] [--root DIR]  the module stage, sorted by start time\n"
    "  blame [--json] [--root DIR]          the modules sorted by load time, longest first\n"
    "  timeline [--svg FILE] [--root DIR]   the module stage on a time axis\n"
    "\n"
    "`peinitctl COMMAND --help` describes each command; `peinitctl --version` prints the\n"
    "version. Exit status: 0 as configured, 1 a problem (failure, or a lock state other than\n"
    "the policy asked), 2 usage error or nothing readable.\n";

constexpr const char* kStatusUsage =
    "usage: peinitctl status [--json] [--root DIR]\n"
    "\n"
    "Shows, without privilege, whether module loading is locked and how (module_lockdown\n"
    "syscall or the kernel.modules_disabled fallback), who set the lock (pid, comm), its\n"
    "trigger and when, sig_enforce, the lockdown LSM level, kernel.modprobe, the effective\n"
    "policy (hive state, AutoLoadPolicy, allow-list, blacklist with sources) and every\n"
    "boot-time module's outcome and duration. Problems are listed first.\n"
    "\n"
    "  --json      machine-readable output, schema version 1 (peinitctl(8), STATUS-JSON.md)\n"
    "  --root DIR  read the record from DIR/run/peinit and the kernel facts from DIR/proc/sys,\n"
    "              DIR/sys and DIR/dev/kmsg instead of the running system\n"
    "\n"
    "Exit status: 0 as configured, 1 a problem, 2 usage error or nothing readable.\n";

constexpr const char* kLockUsage =
    "usage: peinitctl lock [--fallback]\n"
    "\n"
    "Locks kernel module loading until reboot: module_lockdown(LOCK) with trigger\n"
    "runtime-syscall, then reads the flag back. Needs SeTcbPrivilege (CAP_SYS_ADMIN).\n"
    "On a kernel without the syscall nothing is changed unless --fallback is given:\n"
    "\n"
    "  --fallback  on an unpatched kernel, set kernel.modules_disabled=1 and empty\n"
    "              kernel.modprobe instead (needs root)\n"
    "\n"
    "Exit status: 0 locked, 1 refused or failed (not locked), 2 usage error.\n";

constexpr const char* kModulesUsage =
    "usage: peinitctl modules [--failed] [--json] [--root DIR]\n"
    "\n"
    "The boot-time module stage as a table sorted by start time: start (ms from the start of\n"
    "the stage), module, outcome, duration (ms), the unit that asked for it, errno and reason.\n"
    "\n"
    "  --failed    only modules that did not load (failed, missing, skipped, blacklisted)\n"
    "  --json      machine-readable output (schema version 1)\n"
    "  --root DIR  read DIR/run/peinit/modules.json\n"
    "\n"
    "Exit status: 0 no module failed, 1 a module failed or is missing, 2 usage error or no\n"
    "record.\n";

constexpr const char* kBlameUsage =
    "usage: peinitctl blame [--json] [--root DIR]\n"
    "\n"
    "The boot-time modules whose load was attempted (loaded, already loaded, failed), sorted\n"
    "by how long each took to load, longest first, like `systemd-analyze blame`: duration (ms)\n"
    "and module, with the outcome and reason after a module that did not load.\n"
    "\n"
    "  --json      machine-readable output (schema version 1): the module objects of\n"
    "              `modules --json`, in this order\n"
    "  --root DIR  read DIR/run/peinit/modules.json\n"
    "\n"
    "Exit status: 0 no module failed, 1 a module failed or is missing, 2 usage error or no\n"
    "record.\n";

constexpr const char* kTimelineUsage =
    "usage: peinitctl timeline [--svg FILE] [--root DIR]\n"
    "\n"
    "The boot-time module stage on a time axis: one row per module, '.' while it waited after\n"
    "its dependencies were live, '#' while it loaded.\n"
    "\n"
    "  --svg FILE  write an SVG chart instead (like systemd-analyze plot): one bar per module\n"
    "              coloured by outcome, dependency waits, legend and time axis\n"
    "  --root DIR  read DIR/run/peinit/modules.json\n"
    "\n"
    "Exit status: 0 written, 1 the file could not be written, 2 usage error or no record.\n";

struct Options {
    bool json = false;
    bool failed = false;
    bool fallback = false;
    std::string root = "/";
    std::string svg;
};

constexpr OptionSpec kJson{"--json"}, kFailed{"--failed"}, kFallback{"--fallback"},
    kRoot{"--root", Arity::kValue}, kSvg{"--svg", Arity::kValue};

Status LoadStatus(const Options& o) {
    peinit::LinuxKernel kernel;
    return peinit::BuildStatus(peinit::ReadStatusInputs(kernel, o.root));
}

int StatusCommand(const Options& o) {
    Status s = LoadStatus(o);
    std::cout << (o.json ? peinit::RenderStatusJson(s) : peinit::RenderStatusText(s));
    return s.ExitCode();
}

// The module table of `modules` and `blame`: exit 2 without a record, 1 when a module failed.
int ModuleListing(const char* command, const Options& o,
                  const std::function<std::string(const Status&)>& render) {
    Status s = LoadStatus(o);
    if (!s.modules_present && !o.json) {
        std::cerr << "peinitctl " << command << ": no module record under " << o.root
                  << "run/peinit (not booted by peinit?)\n";
        return 2;
    }
    std::cout << render(s);
    if (!s.modules_present) return 2;
    for (const auto& m : s.modules) {
        if (m.IsProblem()) return 1;
    }
    return s.modules_error.empty() ? 0 : 1;
}

int ModulesCommand(const Options& o) {
    return ModuleListing("modules", o, [&](const Status& s) {
        return o.json ? peinit::RenderModulesJson(s, o.failed)
                      : peinit::RenderModulesText(s, o.failed);
    });
}

int BlameCommand(const Options& o) {
    return ModuleListing("blame", o, [&](const Status& s) {
        return o.json ? peinit::RenderBlameJson(s) : peinit::RenderBlameText(s);
    });
}

int TimelineCommand(const Options& o) {
    Status s = LoadStatus(o);
    if (!s.modules_present) {
        std::cerr << "peinitctl timeline: no module record (not booted by peinit?)\n";
        return 2;
    }
    if (o.svg.empty()) {
        std::cout << peinit::RenderTimelineText(s);
        return 0;
    }
    std::string svg = peinit::RenderTimelineSvg(s);
    std::ostream* out = &std::cout;
    std::ofstream file;
    if (o.svg != "-") {
        file.open(o.svg, std::ios::binary | std::ios::trunc);
        if (!file) {
            std::cerr << "peinitctl timeline: cannot write " << o.svg << ": "
                      << std::strerror(errno) << "\n";
            return 1;
        }
        out = &file;
    }
    *out << svg;
    out->flush();
    if (!*out) {
        std::cerr << "peinitctl timeline: cannot write " << o.svg << "\n";
        return 1;
    }
    return 0;
}

struct Command {
    const char* name;
    const char* usage;
    std::vector<OptionSpec> options;
    int (*run)(const Options&);
};

int LockCommand(const Options& o) {
    peinit::LinuxKernel kernel;
    return peinit::RunRuntimeLock(kernel, o.fallback, std::cout, std::cerr);
}

const Command kCommands[] = {
    {"status", kStatusUsage, {kJson, kRoot}, StatusCommand},
    {"lock", kLockUsage, {kFallback}, LockCommand},
    {"modules", kModulesUsage, {kFailed, kJson, kRoot}, ModulesCommand},
    {"blame", kBlameUsage, {kJson, kRoot}, BlameCommand},
    {"timeline", kTimelineUsage, {kSvg, kRoot}, TimelineCommand},
};

int RunCommand(const Command& c, std::span<char* const> argv) {
    std::string prog = std::string("peinitctl ") + c.name;
    auto parsed = peinit::args::Parse(argv, c.options);
    if (!parsed) return peinit::args::UsageError(prog, parsed.error().message(), c.usage);
    if (parsed->help) {
        std::cout << c.usage;
        return 0;
    }
    if (!parsed->operands.empty()) {
        return peinit::args::UsageError(
            prog, peinit::args::UnexpectedOperand(parsed->operands[0]), c.usage);
    }
    Options o;
    o.json = parsed->Has("--json");
    o.failed = parsed->Has("--failed");
    o.fallback = parsed->Has("--fallback");
    o.root = parsed->Value("--root").value_or("/");
    o.svg = parsed->Value("--svg").value_or("");
    if (o.root.back() != '/') o.root += '/';
    return c.run(o);
}

int Main(int argc, char** argv) {
    // No command: `status`, as systemctl lists units.
    if (argc < 2) return RunCommand(kCommands[0], {});
    auto first = peinit::args::ReadFirstArgument(argv[1]);
    switch (first.kind) {
        case peinit::args::FirstArgument::kHelp:
            std::cout << kUsage;
            return 0;
        case peinit::args::FirstArgument::kVersion:
            std::cout << peinit::args::VersionText("peinitctl");
            return 0;
        case peinit::args::FirstArgument::kError:
            return peinit::args::UsageError("peinitctl", first.text, kUsage);
        case peinit::args::FirstArgument::kCommand:
            break;
    }
    for (const auto& c : kCommands) {
        if (first.text == c.name) return RunCommand(c, {argv + 2, argv + argc});
    }
    return peinit::args::UsageError("peinitctl", peinit::args::UnknownCommand(first.text), kUsage);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        return Main(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "peinitctl: internal error: " << e.what() << "\n";
        return 2;
    } catch (...) {
        std::cerr << "peinitctl: internal error\n";
        return 2;
    }
}
