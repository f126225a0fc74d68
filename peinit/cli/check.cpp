// `peinit check`: validates unit files, the hive and optionally a kernel command line offline
// (the image builder runs it on the image tree; R-22).

#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "peinit/cli/commands.h"
#include "peinit/sys/config_files.h"

namespace peinit::cli {

namespace {

constexpr const char* kUsage =
    "usage: peinit check [--root DIR] [--hive FILE] [--cmdline TEXT] [--no-trust-check]\n"
    "                    [UNIT_DIR...]\n"
    "\n"
    "Validates unit files (*.toml, modules-load.d *.conf) and the registry hive, printing every\n"
    "problem as FILE:LINE: MESSAGE.\n"
    "\n"
    "  --root DIR        image root (default /): units from DIR/etc/peinit/units unless\n"
    "                    UNIT_DIRs are given, hive DIR/etc/peinit/hive.toml if present\n"
    "  --hive FILE       check this hive instead (it must exist)\n"
    "  --cmdline TEXT    also check a kernel command line\n"
    "  --no-trust-check  do not require the hive to be root-owned and not group/world-writable\n"
    "                    (for source trees, whose ownership is not the image's)\n"
    "\n"
    "Exit status: 0 clean, 1 problems found, 2 usage error.\n";

int Usage(const std::string& problem) {
    std::cerr << "peinit check: " << problem << "\n" << kUsage;
    return 2;
}

int Run(int argc, char** argv) {
    CheckOptions options;
    for (int i = 0; i < argc; ++i) {
        std::string arg = argv[i];
        auto value = [&](const char* name) -> const char* {
            std::string prefix = std::string(name) + "=";
            if (arg.rfind(prefix, 0) == 0) return argv[i] + prefix.size();
            if (arg == name && i + 1 < argc) return argv[++i];
            return nullptr;
        };
        auto is = [&](const char* name) {
            return arg == name || arg.rfind(std::string(name) + "=", 0) == 0;
        };
        if (arg == "-h" || arg == "--help") {
            std::cout << kUsage;
            return 0;
        } else if (is("--root")) {
            const char* v = value("--root");
            if (v == nullptr || *v == '\0') return Usage("--root needs a directory");
            options.root = v;
        } else if (is("--hive")) {
            const char* v = value("--hive");
            if (v == nullptr || *v == '\0') return Usage("--hive needs a file");
            options.hive = v;
        } else if (is("--cmdline")) {
            const char* v = value("--cmdline");
            if (v == nullptr) return Usage("--cmdline needs a command line");
            options.cmdline = v;
        } else if (arg == "--no-trust-check") {
            options.check_trust = false;
        } else if (arg == "--") {
            for (++i; i < argc; ++i) options.unit_dirs.emplace_back(argv[i]);
        } else if (!arg.empty() && arg[0] == '-') {
            return Usage("unknown option " + arg);
        } else {
            options.unit_dirs.push_back(arg);
        }
    }

    CheckReport report = CheckConfiguration(options);
    for (const auto& p : report.problems) std::cout << p << "\n";
    std::cout << "peinit check: " << report.unit_count << " unit(s), " << report.module_count
              << " module(s), " << report.service_count << " service(s); hive "
              << (report.hive_path.empty()
                      ? std::string("absent (defaults)")
                      : report.hive_path + " (" + std::string(ToString(report.hive_state)) + ")")
              << "; ";
    if (report.ok()) {
        std::cout << "ok\n";
        return 0;
    }
    std::cout << report.problems.size() << " problem(s)\n";
    return 1;
}

}  // namespace

int Check(int argc, char** argv) noexcept {
    try {
        return Run(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "peinit check: internal error: " << e.what() << "\n";
    } catch (...) {
        std::cerr << "peinit check: internal error\n";
    }
    return 1;
}

}  // namespace peinit::cli
