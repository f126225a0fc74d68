#pragma once

// Small helpers around toml++ shared by the unit and hive parsers: a non-throwing parse that
// turns toml++'s parse_error into a ConfigError at the error's line, and the names and lines
// used in `path:line: message` errors.

#include <toml++/toml.h>

#include <optional>
#include <string>
#include <string_view>

#include "peinit/core/config_error.h"

namespace peinit {

// Parses `text`; on a syntax error appends `path:line: <toml++ description>` to `errors` and
// returns nullopt. toml++ throws; this is the one place that catches it. Text that is not UTF-8,
// or holds a raw code point toml++ 3.3.0 mishandles (toml_util.cpp), is refused first with its
// line.
std::optional<toml::table> ParseTomlDocument(const std::string& path, std::string_view text,
                                             ConfigErrors& errors);

// The 1-based line where a node (or key) starts, or 1 when toml++ has no position for it
// (errors must always carry a line).
int LineOf(const toml::node& node);
int LineOf(const toml::key& key);

// "string", "integer", "boolean", "array", "table", ... for "must be X, not Y" messages.
std::string_view TomlTypeName(const toml::node& node);

}  // namespace peinit
