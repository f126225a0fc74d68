#include "peinit/core/json.h"

#include <sstream>

namespace peinit {

std::string FormatJson(const toml::table& document) {
    std::ostringstream out;
    out << toml::json_formatter(document) << "\n";
    return out.str();
}

}  // namespace peinit
