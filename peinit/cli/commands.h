#pragma once

// The offline subcommands of the peinit binary (`peinit check`, `peinit plan`). Each takes the
// arguments after its name (peinit/core/args.h syntax) and returns the process exit status; none throws.

#include <span>

namespace peinit::cli {

// `peinit check [--root DIR] [UNIT_DIR...]`: validates unit files and the hive.
int Check(std::span<char* const> argv) noexcept;

// `peinit plan --root DIR --kver KVER [--units DIR] [--cmdline "..."] [--json]`.
int Plan(std::span<char* const> argv) noexcept;

}  // namespace peinit::cli
