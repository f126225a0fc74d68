#pragma once

// Formatting shared by the status model (status.cpp) and its renderers (status_text.cpp,
// status_json.cpp, status_timeline.cpp); internal to them.

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/text.h"

namespace peinit::status_format {


// Microseconds as milliseconds with one decimal: "12.3".
inline std::string FormatUsAsMs(int64_t us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(us) / 1000.0);
    return buf;
}

}  // namespace peinit::status_format
