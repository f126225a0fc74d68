#pragma once

// Vocabulary shared by the command line, the hive and the module stage: the auto-load and
// signing policies (ordered from loosest to strictest so "tighten" is a max()) and module-name
// rules.

#include <optional>
#include <string>
#include <string_view>

namespace peinit {

// Ordered by strictness: a larger value is tighter (R-02 only ever moves towards kDisabled).
enum class AutoLoadPolicy { kEnabled = 0, kAllowList = 1, kDisabled = 2 };

// Ordered by strictness: kEnforce is tighter than the build floor kWarn.
enum class SigningPolicy { kWarn = 0, kEnforce = 1 };

// Accepts "enabled", "allow-list", "disabled" (ASCII case-insensitive); nullopt otherwise.
std::optional<AutoLoadPolicy> ParseAutoLoadPolicy(std::string_view text);
std::string_view ToString(AutoLoadPolicy policy);

// Accepts "warn", "enforce" (ASCII case-insensitive); nullopt otherwise.
std::optional<SigningPolicy> ParseSigningPolicy(std::string_view text);
std::string_view ToString(SigningPolicy policy);

// The kernel's spelling of a module name: '-' becomes '_' (the kernel and kmod treat them as the
// same character, and /sys/module and the blacklist use the underscore form).
std::string NormalizeModuleName(std::string_view name);

// A module name as the kernel accepts it: 1..55 characters of [A-Za-z0-9_-] (MODULE_NAME_LEN is
// 56 including the terminator).
bool IsValidModuleName(std::string_view name);

// A module name or an alias ("fs-ext4", "net-pf-17", "pci:v00008086d*"): 1..255 printable ASCII
// characters without whitespace, quotes, '/', ',' or '=' (those separate list items, options or
// paths wherever names are written).
bool IsValidModuleRef(std::string_view name);

// A module parameter name as unit options and `module.param=` may give it: characters of
// [A-Za-z0-9_.-], the first not '-' or '.' (what the kernel's parameters are named with; nothing
// its tokeniser would split, unquote or read as the `--` that ends the parameters).
bool IsValidModuleParamName(std::string_view name);

// ASCII case-insensitive equality (registry names, policy words).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
std::string ToLowerAscii(std::string_view text);

}  // namespace peinit
