#pragma once

// Formatting shared by the status model (status.cpp) and its renderers (status_text.cpp,
// status_json.cpp, status_timeline.cpp); internal to them.

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace peinit::status_format {

inline std::string Join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const auto& i : items) {
        if (!out.empty()) out += sep;
        out += i;
    }
    return out;
}

// Microseconds as milliseconds with one decimal: "12.3".
inline std::string FormatUsAsMs(int64_t us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(us) / 1000.0);
    return buf;
}

}  // namespace peinit::status_format
