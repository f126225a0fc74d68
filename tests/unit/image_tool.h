#pragma once

// Runs the peinit-image tool built with the tests (PEINIT_IMAGE_TOOL) through the shell, for
// tests of its command line.

#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace peinit::image {

struct ToolRun {
    int status = -1;
    std::string output;  // stdout + stderr
};

// `env` is prepended to the command ("PEINIT_CACHE=/x"); `args` is shell syntax.
inline ToolRun Tool(const std::string& args, const std::string& env = "") {
    ToolRun r;
    std::string cmd = env + " '" + std::string(PEINIT_IMAGE_TOOL) + "' " + args + " 2>&1";
    FILE* f = ::popen(cmd.c_str(), "r");
    if (f == nullptr) return r;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) r.output.append(buf, n);
    int st = ::pclose(f);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return r;
}

}  // namespace peinit::image
