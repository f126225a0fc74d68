#pragma once

// The offline subcommands of the peinit binary (`peinit check`, `peinit plan`). Each takes the
// arguments after its name and returns the process exit status; none throws.

namespace peinit::cli {

// `peinit check [--root DIR] [UNIT_DIR...]`: validates unit files and the hive.
int Check(int argc, char** argv) noexcept;

// `peinit plan --root DIR --kver KVER [--units DIR] [--cmdline "..."] [--json]`.
int Plan(int argc, char** argv) noexcept;

}  // namespace peinit::cli
