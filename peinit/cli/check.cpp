// `peinit check`: validates unit files, the hive and optionally a kernel command line offline
// (the image builder runs it on the image tree; R-22).

#include <cstring>
#include <exception>
#include <iostream>
#include <string>

#include "peinit/cli/commands.h"
#include "peinit/core/args.h"
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

constexpr args::OptionSpec kOptions[] = {
    {"--root", args::Arity::kValue},
    {"--hive", args::Arity::kValue},
    {"--cmdline", args::Arity::kValue},
    {"--no-trust-check"},
};

int Run(std::span<char* const> argv) {
    auto parsed = args::Parse(argv, kOptions);
    if (!parsed) return args::UsageError("peinit check", parsed.error().message(), kUsage);
    if (parsed->help) {
        std::cout << kUsage;
        return 0;
    }
    CheckOptions options;
    if (auto root = parsed->Value("--root")) options.root = *root;
    if (auto hive = parsed->Value("--hive")) options.hive = *hive;
    options.cmdline = parsed->Value("--cmdline");
    options.check_trust = !parsed->Has("--no-trust-check");
    options.unit_dirs = parsed->operands;

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

int Check(std::span<char* const> argv) noexcept {
    try {
        return Run(argv);
    } catch (const std::exception& e) {
        std::cerr << "peinit check: internal error: " << e.what() << "\n";
    } catch (...) {
        std::cerr << "peinit check: internal error\n";
    }
    return 1;
}

}  // namespace peinit::cli
