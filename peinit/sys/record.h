#pragma once

// The boot record under /run/peinit (read by peinitctl): JSON files written atomically (a
// temporary file in the same directory, fsync, rename), so a reader never sees half a record.
// The JSON is formatted from a toml::table by FormatJson (peinit/core/json.h), the one JSON
// formatting of every tool.

#include <toml++/toml.h>

#include <string>

#include "peinit/core/result.h"

namespace peinit {

Result<void> WriteJsonAtomically(const std::string& path, const toml::table& record);
// The same for text that is already rendered (boot.json, peinit/core/status.h).
Result<void> WriteFileAtomically(const std::string& path, const std::string& text);

// Milliseconds since boot (CLOCK_BOOTTIME) and the wall clock as RFC 3339 UTC, for records.
int64_t BootOffsetMs();
std::string WallTimeUtc();

}  // namespace peinit
