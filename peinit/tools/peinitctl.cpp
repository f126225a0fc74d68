// peinitctl: status and runtime API of peinit (spec §7, R-20, R-21; man page peinitctl(8), JSON
// schema peinit/tools/STATUS-JSON.md).
//
// Exit codes: 0 everything as configured (lock locked: 0); 1 a problem (something failed, or the
// lock state differs from what the policy asked; lock: not locked); 2 usage error, or nothing
// could be read at all.

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "peinit/core/status.h"
#include "peinit/sys/linux_kernel.h"
#include "peinit/sys/status_sources.h"

namespace {

using peinit::Status;

constexpr const char* kUsage =
    "usage: peinitctl COMMAND [OPTIONS]\n"
    "\n"
    "commands:\n"
    "  status [--json] [--root DIR]         lock state, policy and boot-time modules\n"
    "  lock [--fallback]                    lock module loading now (needs SeTcbPrivilege)\n"
    "  modules [--failed] [--json] [--root DIR]  the module stage, sorted by start time\n"
    "  timeline [--svg FILE] [--root DIR]   the module stage on a time axis\n"
    "\n"
    "`peinitctl COMMAND --help` describes each command. Exit status: 0 as configured, 1 a\n"
    "problem (failure, or a lock state other than the policy asked), 2 usage error or nothing\n"
    "readable.\n";

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
    bool help = false;
    bool json = false;
    bool failed = false;
    bool fallback = false;
    std::string root = "/";
    std::string svg;
};

// Parses the options a command accepts (`allowed`, e.g. "json root"); false on a usage error.
bool ParseOptions(const char* command, int argc, char** argv, const std::string& allowed,
                  Options& o) {
    auto allows = [&](const char* name) { return allowed.find(name) != std::string::npos; };
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&](std::string& into) {
            if (auto eq = a.find('='); eq != std::string::npos) {
                into = a.substr(eq + 1);
                return !into.empty();
            }
            if (i + 1 >= argc) return false;
            into = argv[++i];
            return true;
        };
        if (a == "-h" || a == "--help") {
            o.help = true;
        } else if (a == "--json" && allows("json")) {
            o.json = true;
        } else if (a == "--failed" && allows("failed")) {
            o.failed = true;
        } else if (a == "--fallback" && allows("fallback")) {
            o.fallback = true;
        } else if ((a == "--root" || a.starts_with("--root=")) && allows("root")) {
            if (!value(o.root)) {
                std::cerr << "peinitctl " << command << ": --root needs a directory\n";
                return false;
            }
        } else if ((a == "--svg" || a.starts_with("--svg=")) && allows("svg")) {
            if (!value(o.svg)) {
                std::cerr << "peinitctl " << command << ": --svg needs a file name\n";
                return false;
            }
        } else {
            std::cerr << "peinitctl " << command << ": unknown argument \"" << a << "\"\n";
            return false;
        }
    }
    return true;
}

Status LoadStatus(const Options& o) {
    peinit::LinuxKernel kernel;
    return peinit::BuildStatus(peinit::ReadStatusInputs(kernel, o.root));
}

int StatusCommand(const Options& o) {
    Status s = LoadStatus(o);
    std::cout << (o.json ? peinit::RenderStatusJson(s) : peinit::RenderStatusText(s));
    return s.ExitCode();
}

int ModulesCommand(const Options& o) {
    Status s = LoadStatus(o);
    if (!s.modules_present && !o.json) {
        std::cerr << "peinitctl modules: no module record under " << o.root
                  << "run/peinit (not booted by peinit?)\n";
        return 2;
    }
    std::cout << (o.json ? peinit::RenderModulesJson(s, o.failed)
                         : peinit::RenderModulesText(s, o.failed));
    if (!s.modules_present) return 2;
    for (const auto& m : s.modules) {
        if (m.IsProblem()) return 1;
    }
    return s.modules_error.empty() ? 0 : 1;
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

int Main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << kUsage;
        return 2;
    }
    std::string command = argv[1];
    if (command == "-h" || command == "--help" || command == "help") {
        std::cout << kUsage;
        return 0;
    }
    struct Command {
        const char* name;
        const char* usage;
        const char* options;
        int (*run)(const Options&);
    };
    static const Command kCommands[] = {
        {"status", kStatusUsage, "json root", StatusCommand},
        {"lock", kLockUsage, "fallback",
         [](const Options& o) {
             peinit::LinuxKernel kernel;
             return peinit::RunRuntimeLock(kernel, o.fallback, std::cout, std::cerr);
         }},
        {"modules", kModulesUsage, "failed json root", ModulesCommand},
        {"timeline", kTimelineUsage, "svg root", TimelineCommand},
    };
    for (const auto& c : kCommands) {
        if (command != c.name) continue;
        Options o;
        if (!ParseOptions(c.name, argc - 2, argv + 2, c.options, o)) {
            std::cerr << c.usage;
            return 2;
        }
        if (o.help) {
            std::cout << c.usage;
            return 0;
        }
        if (!o.root.empty() && o.root.back() != '/') o.root += '/';
        return c.run(o);
    }
    std::cerr << "peinitctl: unknown command \"" << command << "\"\n" << kUsage;
    return 2;
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
