#pragma once

// The command-line syntax every peinit tool shares (peinit check/plan, peinitctl, peinit-pkg,
// peinit-image): one option table per command, one result, one set of messages.
//
//   --opt VALUE and --opt=VALUE      (the value may start with '-'; an empty one is missing)
//   -o VALUE and -oVALUE             (an option's one-letter alias, where it has one)
//   --flag                           (a flag given a value, --flag=x, is an error)
//   --                               ends the options: everything after it is an operand
//   -                                is an operand
//   --help, -h                       on every command
//
// Options and operands may be mixed. Long options must be spelled in full (no abbreviations).
// Two engines read this syntax: Parse() below, hand-written and dependency-free, for the
// binaries an image ships (peinit is PID 1, peinitctl needs only glibc), and ParseHost()
// (peinit/tools/host_args.h, Boost.program_options) for the host tools. Both turn argv into
// Tokens and hand them to Collect(), so a repeated option, a missing value and an unknown option
// read the same whichever tool is run.

#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"

namespace peinit::args {

inline constexpr int kExitUsage = 2;

enum class Arity {
    kFlag,   // --json
    kValue,  // --root DIR, at most once
    kList,   // --module NAME, repeatable
};

struct OptionSpec {
    std::string_view name;  // "--root"
    Arity arity = Arity::kFlag;
    char alias = 0;  // 'o' for -o
};

// One option occurrence (by its long name) or one operand (empty name), in argv order.
struct Token {
    std::string name;
    std::optional<std::string> value;
};

struct Parsed {
    bool help = false;
    std::vector<std::string> operands;

    bool Has(std::string_view name) const { return options_.count(name) != 0; }
    // The value of a kValue option.
    std::optional<std::string> Value(std::string_view name) const;
    // Every value of a kList option, in order.
    std::vector<std::string> Values(std::string_view name) const;

  private:
    friend Result<Parsed> Collect(std::vector<Token> tokens, std::span<const OptionSpec> spec);
    std::map<std::string, std::vector<std::string>, std::less<>> options_;
};

// argv holds the command's arguments only (not the program or command name).
Result<Parsed> Parse(std::span<char* const> argv, std::span<const OptionSpec> spec);

// Checks tokens against the table (values where they belong, kValue options at most once).
Result<Parsed> Collect(std::vector<Token> tokens, std::span<const OptionSpec> spec);

// What a tool with commands (peinit, peinitctl, peinit-pkg, peinit-image) makes of its first
// argument: "--help", "-h" or "help"; "--version"; another option (an error, in `text`); or the
// command's name.
struct FirstArgument {
    enum Kind { kCommand, kHelp, kVersion, kError } kind;
    std::string text;
};
FirstArgument ReadFirstArgument(std::string_view arg);

// The messages, worded once for every tool.
std::string UnknownOption(std::string_view arg);       // unknown option "--bogus"
std::string MissingValue(std::string_view name);       // option --root needs a value
std::string UnexpectedValue(std::string_view name);    // option --json takes no value
std::string Repeated(std::string_view name);           // option --root given more than once
std::string Required(std::string_view name);           // option --kver is required
std::string UnknownCommand(std::string_view command);  // unknown command "frobnicate"
std::string UnexpectedOperand(std::string_view arg);   // unexpected argument "x"

// Prints "PROG: MESSAGE", a blank line and the usage to stderr; returns kExitUsage.
int UsageError(std::string_view prog, std::string_view message, std::string_view usage);

// "TOOL (peinit) VERSION\n", the project's version from CMake's project(VERSION).
std::string VersionText(std::string_view tool);
// The project's version alone ("0.3.0").
std::string Version();

}  // namespace peinit::args
