#pragma once

// The boot record under /run/peinit (read by peinitctl): files written atomically (a temporary
// file in the same directory, fsync, rename), so a reader never sees half a record. Each record
// is a type of peinit/record/ rendered by its ToJson().

#include <string>

#include "peinit/core/result.h"

namespace peinit {

Result<void> WriteFileAtomically(const std::string& path, const std::string& text);

// Milliseconds since boot (CLOCK_BOOTTIME) and the wall clock as RFC 3339 UTC, for records.
int64_t BootOffsetMs();
std::string WallTimeUtc();

}  // namespace peinit
