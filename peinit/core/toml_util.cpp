#include "peinit/core/toml_util.h"

#include <cstdio>

namespace peinit {

namespace {

int LineOfRegion(const toml::source_region& region) {
    return region.begin.line > 0 ? static_cast<int>(region.begin.line) : 1;
}

// Debian 12's toml++ (3.3.0) asks a generated table whether a code point is whitespace, and
// for these ranges the table's lookup ends in __builtin_unreachable(): undefined behaviour
// whenever the parser classifies one of them, which it does for every character of a key, a
// boolean or a float and after a line-ending backslash in a multi-line string (found by
// tests/fuzz; upstream marzer/tomlplusplus#190, #295).
bool TomlMisclassifies(char32_t c) {
    return (c >= 0xA1 && c <= 0x499) || (c >= 0x2C5E && c <= 0x2FFF) ||
           (c >= 0x3001 && c <= 0x3057) || (c >= 0xFB26 && c <= 0xFEFE);
}

// So the text is checked before toml++ sees it: it must be UTF-8 (as TOML requires) without
// those code points; inside strings a \uXXXX escape still spells them.
std::optional<ConfigError> CheckTomlText(const std::string& path, std::string_view text) {
    int line = 1;
    for (size_t i = 0; i < text.size();) {
        auto b = static_cast<unsigned char>(text[i]);
        if (b < 0x80) {
            line += b == '\n';
            ++i;
            continue;
        }
        size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0;
        char32_t c = len == 4 ? b & 0x07 : len == 3 ? b & 0x0F : b & 0x1F;
        bool ok = len != 0 && b < 0xF5 && i + len <= text.size();
        for (size_t k = 1; ok && k < len; ++k) {
            auto cont = static_cast<unsigned char>(text[i + k]);
            ok = (cont & 0xC0) == 0x80;
            c = (c << 6) | (cont & 0x3F);
        }
        // Overlong forms, surrogates and values past U+10FFFF are not UTF-8 either.
        static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
        if (!ok || c < kMin[len] || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF) {
            return ConfigError{path, line, "not valid UTF-8"};
        }
        if (TomlMisclassifies(c)) {
            char code[16];
            std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(c));
            return ConfigError{path, line,
                               std::string("character ") + code +
                                   " is not accepted (the TOML library mishandles it); in a "
                                   "string, write it as \\u" +
                                   (code + 2) + " instead"};
        }
        i += len;
    }
    return std::nullopt;
}

}  // namespace

std::optional<toml::table> ParseTomlDocument(const std::string& path, std::string_view text,
                                             ConfigErrors& errors) {
    if (auto error = CheckTomlText(path, text)) {
        errors.push_back(std::move(*error));
        return std::nullopt;
    }
    try {
        return toml::parse(text, std::string_view(path));
    } catch (const toml::parse_error& e) {
        errors.push_back({path, LineOfRegion(e.source()), std::string(e.description())});
    } catch (const std::exception& e) {
        // toml++ only documents parse_error; anything else (bad_alloc) is still not a crash.
        errors.push_back({path, 1, std::string("cannot parse: ") + e.what()});
    }
    return std::nullopt;
}

int LineOf(const toml::node& node) { return LineOfRegion(node.source()); }
int LineOf(const toml::key& key) { return LineOfRegion(key.source()); }

std::string_view TomlTypeName(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::string:
            return "string";
        case toml::node_type::integer:
            return "integer";
        case toml::node_type::floating_point:
            return "float";
        case toml::node_type::boolean:
            return "boolean";
        case toml::node_type::array:
            return "array";
        case toml::node_type::table:
            return "table";
        case toml::node_type::date:
            return "date";
        case toml::node_type::time:
            return "time";
        case toml::node_type::date_time:
            return "date-time";
        case toml::node_type::none:
            break;
    }
    return "nothing";
}

}  // namespace peinit
