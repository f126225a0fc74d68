#include "peinit/core/record_json.h"

#include <boost/property_tree/json_parser.hpp>
#include <cstdlib>
#include <sstream>

namespace peinit {

namespace pt = boost::property_tree;

Result<VersionedRecord> ParseVersionedRecord(const std::string& text, const std::string& file,
                                             int reader_version, const std::string& newer_hint) {
    VersionedRecord record;
    try {
        std::istringstream in(text);
        pt::read_json(in, record.tree);
    } catch (const pt::json_parser_error& e) {
        return Err(file + ":" + std::to_string(e.line()) + ": " + e.message());
    } catch (const std::exception& e) {
        return Err(file + ": " + e.what());
    }
    auto version = record.tree.get_optional<std::string>("version");
    if (!version) return Err(file + ": no \"version\"");
    char* end = nullptr;
    const long v = std::strtol(version->c_str(), &end, 10);
    if (version->empty() || *end != '\0' || v < 1) {
        return Err(file + ": \"version\" must be a positive integer, not \"" + *version + "\"");
    }
    if (v > reader_version) {
        return Err(file + ": version " + std::to_string(v) + " is newer than this reader's " +
                   std::to_string(reader_version) +
                   (newer_hint.empty() ? std::string() : " (" + newer_hint + ")"));
    }
    record.version = static_cast<int>(v);
    return record;
}

}  // namespace peinit
