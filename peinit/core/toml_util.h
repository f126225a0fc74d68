#pragma once

// Small helpers around toml++ shared by the unit and hive parsers: a non-throwing parse that
// turns toml++'s parse_error into a ConfigError at the error's line, and the names and lines
// used in `path:line: message` errors.

#include <toml++/toml.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/config_error.h"

namespace peinit {

// Parses `text`; on syntax errors appends each `path:line: <toml++ description>` to `errors`
// (ParseTomlRecovering) and returns nullopt. toml++ throws; this is the one place that catches it. Text that is not UTF-8,
// or holds a code point toml++ 3.3.0 mishandles where its parser classifies it (outside strings
// and comments, and at two places in multi-line basic strings; toml_util.cpp), is refused first
// with its line. UTF-8 in comments and string values is accepted and kept byte for byte.
std::optional<toml::table> ParseTomlDocument(const std::string& path, std::string_view text,
                                             ConfigErrors& errors);

// A document parsed as far as it goes: after a syntax error (or a refused character) its line is
// blanked and the rest parsed again, so independent syntax errors are all reported in one run.
// What is checked on the resulting table may see consequences of a blanked line (a missing key,
// a header that is gone): Independent() says whether a line lies in a section (a [header] to the
// next one, or the top level) that had no error, where a problem found is the user's own.
struct TomlDocument {
    std::optional<toml::table> table;  // nullopt when not even the rest could be parsed
    std::vector<int> error_lines;      // lines of the syntax and text errors, as found
    std::vector<int> section_starts;   // first line of each section, ascending
    bool complete() const { return table.has_value() && error_lines.empty(); }
    bool Independent(int line) const;
};

// Every syntax and text error goes to `errors`, one per section (ParseTomlDocument's rules).
TomlDocument ParseTomlRecovering(const std::string& path, std::string_view text,
                                 ConfigErrors& errors);

// The 1-based line where a node (or key) starts, or 1 when toml++ has no position for it
// (errors must always carry a line).
int LineOf(const toml::node& node);
int LineOf(const toml::key& key);

// "string", "integer", "boolean", "array", "table", ... for "must be X, not Y" messages.
std::string_view TomlTypeName(const toml::node& node);

}  // namespace peinit
