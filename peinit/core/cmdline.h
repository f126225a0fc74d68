#pragma once

// The kernel command line as peinit reads it from /proc/cmdline.
//
// Tokenisation follows the kernel's own next_arg() (kernel/params.c) byte for byte, so peinit
// sees the same parameters the kernel saw: whitespace separates parameters, double quotes group
// ("foo=a b" and foo="a b" both give key foo, value `a b`), the first '=' splits key and value,
// and a bare `--` ends the kernel's parameters (everything after it is for init).
//
// Interpretation is pure and never fails: a bad value (peinit.workers=abc) becomes a diagnostic
// and leaves the typed field unset, so a typo can never stop a boot.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/module_policy.h"

namespace peinit {

// One parameter exactly as tokenised (quotes removed the way the kernel removes them).
struct KernelParam {
    std::string key;
    // nullopt for a flag without '=' ("quiet"); "" for an empty value ("foo=").
    std::optional<std::string> value;
    bool operator==(const KernelParam&) const = default;
};

// `module.param=value`: an option for a module (kmod applies these on every load of it).
struct ModuleParam {
    std::string module;  // normalised: '-' -> '_'
    std::string param;   // as written
    std::optional<std::string> value;
    bool operator==(const ModuleParam&) const = default;
};

// A parameter peinit understood the key of but could not use.
struct CmdlineDiagnostic {
    std::string param;    // the parameter as written, e.g. "peinit.workers=abc"
    std::string message;  // e.g. "not a positive integer"
    std::string ToString() const { return param + ": " + message; }
};

// What PID 1 does on the emergency path once it has locked (when required) and explained.
enum class EmergencyAction {
    kPoweroff,  // the default
    kShell,     // run the image's /bin/sh on the console first (only behind a required lock)
};

struct Cmdline {
    // Every kernel parameter before `--`, in order (repeats kept).
    std::vector<KernelParam> params;
    // The words after `--`: the kernel passes them to init as argv[1..].
    std::vector<std::string> init_args;
    // Parameters without '=' and without a '.' ("quiet", "ro", "single").
    std::vector<std::string> flags;

    // root= and init=: the last occurrence wins, as in the kernel.
    std::optional<std::string> root;
    std::optional<std::string> init;

    // `mod.param[=value]` for every dotted key outside peinit's own namespaces (peinit.,
    // modprobe., rd.), in order.
    std::vector<ModuleParam> module_params;
    // modprobe.blacklist= and the kernel's module_blacklist=, accumulated over repeats,
    // normalised and de-duplicated in first-seen order.
    std::vector<std::string> blacklist;
    // modules_load= and rd.modules_load= (peinit is the initramfs, so both apply), accumulated
    // and de-duplicated in first-seen order; names or aliases as written.
    std::vector<std::string> modules_load;

    // peinit.lock=: repeats combine to the strictest (1 wins), since the command line exists
    // only to tighten and a later parameter must not undo an earlier one. A value that is not
    // a boolean counts as 1 (with a diagnostic).
    std::optional<bool> lock;
    // peinit.autoload=: repeats combine to the strictest; an unknown value counts as disabled
    // (with a diagnostic).
    std::optional<AutoLoadPolicy> autoload;
    // peinit.emergency=shell|poweroff: the last valid occurrence wins (default poweroff).
    std::optional<EmergencyAction> emergency;
    // peinit.workers=N (1..kMaxWorkers): the last valid occurrence wins.
    std::optional<int> workers;
    // peinit.collect=/dev/DEVICE: at shutdown PID 1 writes its boot records to this device as
    // a tar stream (peinit/sys/boot_collect.h; `peinit-image boot --collect` passes the VM's
    // second serial port). A path under /dev without "." or ".." components; the last valid
    // occurrence wins.
    std::optional<std::string> collect;
    // module.sig_enforce= (kernel boolean syntax): the last occurrence wins.
    std::optional<bool> sig_enforce;

    // Unknown peinit.* keys, bad values, unterminated quotes.
    std::vector<CmdlineDiagnostic> diagnostics;

    static constexpr int kMaxWorkers = 256;

    bool HasFlag(std::string_view flag) const;
    // The options for `module` from mod.param= entries, in the kernel's module-parameter syntax
    // ("a=1 b=\"x y\" c"), ready to be appended to modprobe.d options.
    std::string ModuleOptions(std::string_view module) const;
};

// Splits a command line into parameters exactly like the kernel's next_arg(). Stops at a bare
// `--`; the words after it are returned through `init_args` and whether there was one through
// `saw_dashes`, when those are not null.
std::vector<KernelParam> TokenizeCmdline(std::string_view text,
                                         std::vector<std::string>* init_args = nullptr,
                                         bool* saw_dashes = nullptr);

// Parses /proc/cmdline text (a trailing newline is whitespace like any other).
Cmdline ParseCmdline(std::string_view text);

// The kernel's boolean syntax (kstrtobool): y/Y/1/on -> true, n/N/0/off -> false.
std::optional<bool> ParseKernelBool(std::string_view text);

}  // namespace peinit
