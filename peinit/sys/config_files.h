#pragma once

// Reading configuration from disk: unit directories and the hive. The parsers in peinit/core
// are pure; this is where files are opened, and where the hive's owner and mode come from the
// descriptor that was actually read (no stat-then-open race).

#include <optional>
#include <string>
#include <vector>

#include "peinit/core/config_error.h"
#include "peinit/core/hive.h"
#include "peinit/core/result.h"
#include "peinit/core/units.h"

namespace peinit {

// Larger configuration files are refused rather than read into PID 1's memory.
inline constexpr size_t kMaxConfigFileSize = 1 << 20;

struct FileContents {
    std::string text;
    FileTrust trust;  // owner and permission bits from fstat() of the open descriptor
};

// Reads a regular file. With `follow_symlinks` false a symlink is refused (ELOOP), so the
// owner and mode checked are the file's own. Errors are "PATH: cannot read: <strerror>".
Result<FileContents> ReadConfigFile(const std::string& path, bool follow_symlinks = true);

struct UnitLoad {
    UnitSet units;        // valid units, in load order
    ConfigErrors errors;  // every problem, per file in directory order
};

// Loads every *.toml and *.conf in each directory (sorted by file name, directories in the
// given order), then links them. A missing or unreadable directory is an error.
UnitLoad LoadUnitDirs(const std::vector<std::string>& dirs);

struct HiveLoadOptions {
    bool check_trust = true;       // the file's owner and mode; off for source trees
    bool follow_symlinks = false;  // at boot the trust check must see the file itself
};

// The one hive loader. Loads the hive at `path`: absent file -> defaults (HiveState::kAbsent);
// unreadable, malformed or (with check_trust) untrusted -> hardened fallback with the reasons
// . Never fails: PID 1 boots with what it gets.
Hive LoadHive(const std::string& path, HiveLoadOptions options = {});

// The same for callers to whom every problem is an error (peinit-image: a hive that would put
// the boot into the hardened fallback is not shipped): the hive, or each problem as
// "FILE:LINE: message", one per line; an absent file is "FILE: cannot read: ...".
Result<Hive> LoadHiveOrError(const std::string& path, HiveLoadOptions options);

// `peinit check`: validates units, the hive and optionally a command line, offline.
struct CheckOptions {
    std::string root = "/";
    std::vector<std::string> unit_dirs;  // empty: ROOT/etc/peinit/units
    std::optional<std::string> hive;     // unset: ROOT/etc/peinit/hive.toml if it exists
    bool check_trust = true;             // owner/mode of the hive
    std::optional<std::string> cmdline;  // a kernel command line to validate too
};

struct CheckReport {
    std::vector<std::string> problems;  // "file:line: message", in a stable order
    size_t unit_count = 0;
    size_t module_count = 0;
    size_t service_count = 0;
    HiveState hive_state = HiveState::kAbsent;
    std::string hive_path;  // "" when no hive was checked
    bool ok() const { return problems.empty(); }
};

CheckReport CheckConfiguration(const CheckOptions& options);

}  // namespace peinit
