#include "peinit/core/toml_util.h"

namespace peinit {

namespace {

int LineOfRegion(const toml::source_region& region) {
    return region.begin.line > 0 ? static_cast<int>(region.begin.line) : 1;
}

}  // namespace

std::optional<toml::table> ParseTomlDocument(const std::string& path, std::string_view text,
                                             ConfigErrors& errors) {
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
