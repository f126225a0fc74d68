#pragma once

// Small helpers the record types share for writing (toml::table, formatted by
// peinit/core/json.h) and for reading enums by their names.

#include <toml++/toml.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace peinit {

inline toml::array TomlStrings(const std::vector<std::string>& items) {
    toml::array out;
    for (const auto& item : items) out.push_back(item);
    return out;
}

// The value of `values` whose ToString is `text`, nullopt when none is.
template <typename T, std::size_t N>
std::optional<T> ParseByName(const T (&values)[N], std::string_view text) {
    for (T v : values) {
        if (ToString(v) == text) return v;
    }
    return std::nullopt;
}

}  // namespace peinit
