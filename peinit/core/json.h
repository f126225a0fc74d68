#pragma once

// The one JSON formatting of everything peinit writes as JSON (the records under /run/peinit,
// `peinitctl ... --json`, `peinit plan --json`): toml++'s json_formatter on a toml::table, which
// keeps types (booleans, integers) without a hand-written encoder. Object keys come out sorted,
// indented by four spaces, and the text ends with one newline.

#include <toml++/toml.h>

#include <string>

namespace peinit {

std::string FormatJson(const toml::table& document);

}  // namespace peinit
