// The peinit binary's entry point. As PID 1 it runs the boot (peinit/init/pid1.h) and never
// returns; as a normal command it dispatches the offline subcommands.

#include <cstring>
#include <exception>
#include <iostream>
#include <string_view>

#include <unistd.h>

#include "peinit/cli/commands.h"
#include "peinit/init/pid1.h"
#include "stages/autoload/helper.h"

namespace {

constexpr const char* kUsage =
    "usage: peinit COMMAND [ARGS...]\n"
    "\n"
    "commands:\n"
    "  check   validate unit files and the registry hive (peinit check --help)\n"
    "  plan    show the boot-time module plan (peinit plan --help)\n";

int Main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << kUsage;
        return 2;
    }
    const char* command = argv[1];
    if (std::strcmp(command, "-h") == 0 || std::strcmp(command, "--help") == 0) {
        std::cout << kUsage;
        return 0;
    }
    if (std::strcmp(command, "check") == 0) return peinit::cli::Check(argc - 2, argv + 2);
    if (std::strcmp(command, "plan") == 0) return peinit::cli::Plan(argc - 2, argv + 2);
    std::cerr << "peinit: unknown command \"" << command << "\"\n" << kUsage;
    return 2;
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
