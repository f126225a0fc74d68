#pragma once

// The host tools' engine for the shared command-line syntax (peinit/core/args.h):
// Boost.program_options reads argv, Collect() checks the result, so peinit-pkg and peinit-image
// accept exactly what the image binaries accept and word their errors the same way.

#include <span>

#include "peinit/core/args.h"

namespace peinit::args {

// argv holds the command's arguments only (not the program or command name).
Result<Parsed> ParseHost(std::span<char* const> argv, std::span<const OptionSpec> spec);

}  // namespace peinit::args
