#pragma once

// Small text helpers shared by the product's libraries and tools.

#include <string>
#include <string_view>
#include <vector>

namespace peinit {

// The items with `sep` between them ("a, b, c"); "" for none. An item is appended after a
// separator only once something is already in the result, so empty leading items add nothing.
inline std::string Join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const auto& item : items) {
        if (!out.empty()) out += sep;
        out += item;
    }
    return out;
}

}  // namespace peinit
