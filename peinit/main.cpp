// The peinit binary's entry point. As PID 1 it runs the boot (peinit/init/pid1.h) and never
// returns; as a normal command it dispatches the offline subcommands.

#include <exception>
#include <iostream>
#include <span>
#include <string_view>

#include <unistd.h>

#include "peinit/cli/commands.h"
#include "peinit/core/args.h"
#include "peinit/init/pid1.h"
#include "peinit/helper/helper.h"

namespace {

constexpr const char* kUsage =
    "usage: peinit COMMAND [ARGS...]\n"
    "\n"
    "As PID 1, peinit boots the system (peinit(8)); otherwise it runs a command:\n"
    "\n"
    "commands:\n"
    "  check   validate unit files and the registry hive (peinit check --help)\n"
    "  plan    show the boot-time module plan (peinit plan --help)\n"
    "\n"
    "`peinit --version` prints the version.\n";

int Main(int argc, char** argv) {
    if (argc < 2) return peinit::args::UsageError("peinit", "no command given", kUsage);
    auto first = peinit::args::ReadFirstArgument(argv[1]);
    std::span<char* const> rest(argv + 2, argv + argc);
    switch (first.kind) {
        case peinit::args::FirstArgument::kHelp:
            std::cout << kUsage;
            return 0;
        case peinit::args::FirstArgument::kVersion:
            std::cout << peinit::args::VersionText("peinit");
            return 0;
        case peinit::args::FirstArgument::kError:
            return peinit::args::UsageError("peinit", first.text, kUsage);
        case peinit::args::FirstArgument::kCommand:
            break;
    }
    if (first.text == "check") return peinit::cli::Check(rest);
    if (first.text == "plan") return peinit::cli::Plan(rest);
    return peinit::args::UsageError("peinit", peinit::args::UnknownCommand(first.text), kUsage);
}

}  // namespace

int main(int argc, char** argv) {
    if (getpid() == 1) peinit::RunPid1();
    // Run by the kernel as kernel.modprobe (a link named peinit-modprobe): the demand-load helper.
    if (std::string_view arg0 = argc > 0 ? argv[0] : "";
        arg0 == "peinit-modprobe" || arg0.ends_with("/peinit-modprobe")) {
        return peinit::ModprobeHelperMain(argc, argv);
    }
    try {
        return Main(argc, argv);
    } catch (...) {
        // The subcommands do not throw; this only guards the dispatch itself.
        std::cerr << "peinit: internal error\n";
        return 1;
    }
}
