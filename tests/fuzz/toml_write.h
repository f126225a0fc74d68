#pragma once

// Writing TOML for the round-trip checks of the unit and hive fuzzers: toml++'s own formatter,
// with non-ASCII characters escaped (\uXXXX), which is how peinit's parsers accept them
// (peinit/core/toml_util.cpp refuses code points toml++ 3.3.0 mishandles unless escaped).

#include <toml++/toml.h>

#include <sstream>
#include <string>

namespace peinit::fuzz {

inline std::string Formatted(const toml::table& table) {
    std::ostringstream out;
    out << toml::toml_formatter(table, toml::toml_formatter::default_flags &
                                           ~toml::format_flags::allow_unicode_strings)
        << "\n";
    return out.str();
}

}  // namespace peinit::fuzz
