#include "peinit/core/measurement_record.h"

#include <toml++/toml.h>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <sstream>

#include "peinit/core/json.h"
#include "peinit/core/record_json.h"

namespace peinit {

namespace pt = boost::property_tree;

std::string MeasurementRecord::ToJson() const {
    toml::array rows;
    for (const Event& e : events) {
        rows.push_back(toml::table{{"pcr", e.pcr},
                                   {"content_type", e.content_type},
                                   {"event", e.event},
                                   {"string", e.string},
                                   {"digest", e.digest}});
    }
    return FormatJson(toml::table{{"version", version},
                                  {"state", state},
                                  {"reason", reason},
                                  {"error", error},
                                  {"tpm", tpm},
                                  {"pcr", pcr},
                                  {"log", log},
                                  {"module_count", module_count},
                                  {"module_set_sha256", module_set_sha256},
                                  {"events", std::move(rows)}});
}

namespace {

Result<int64_t> IntOf(const pt::ptree& tree, const std::string& key, const std::string& where) {
    auto value = tree.get_child_optional(key);
    if (!value) return Err(where + ": no \"" + key + "\"");
    const std::string& text = value->data();
    char* end = nullptr;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (!value->empty() || text.empty() || *end != '\0') {
        return Err(where + ": \"" + key + "\" must be an integer");
    }
    return static_cast<int64_t>(v);
}

Result<std::string> StringOf(const pt::ptree& tree, const std::string& key,
                             const std::string& where) {
    auto value = tree.get_child_optional(key);
    if (!value) return Err(where + ": no \"" + key + "\"");
    if (!value->empty()) return Err(where + ": \"" + key + "\" must be a string");
    return value->data();
}

}  // namespace

Result<MeasurementRecord> MeasurementRecord::FromJson(const std::string& text,
                                                      const std::string& file) {
    auto record = PEINIT_TRY(ParseVersionedRecord(text, file, kVersion));
    const pt::ptree& tree = record.tree;
    MeasurementRecord r;
    r.version = record.version;
    r.state = PEINIT_TRY(StringOf(tree, "state", file));
    if (r.state != kMeasured && r.state != kNotMeasured && r.state != kFailed) {
        return Err(file + ": \"state\" must be \"measured\", \"not-measured\" or \"failed\", not \"" +
                   r.state + "\"");
    }
    r.reason = PEINIT_TRY(StringOf(tree, "reason", file));
    r.error = PEINIT_TRY(StringOf(tree, "error", file));
    r.tpm = PEINIT_TRY(StringOf(tree, "tpm", file));
    r.pcr = static_cast<int>(PEINIT_TRY(IntOf(tree, "pcr", file)));
    r.log = PEINIT_TRY(StringOf(tree, "log", file));
    r.module_count = PEINIT_TRY(IntOf(tree, "module_count", file));
    r.module_set_sha256 = PEINIT_TRY(StringOf(tree, "module_set_sha256", file));
    auto events = tree.get_child_optional("events");
    if (!events) return Err(file + ": no \"events\"");
    int i = 0;
    for (const auto& [key, row] : *events) {
        const std::string where = file + ": events[" + std::to_string(i++) + "]";
        if (!key.empty()) return Err(file + ": \"events\" must be an array");
        Event e;
        e.pcr = static_cast<int>(PEINIT_TRY(IntOf(row, "pcr", where)));
        e.content_type = PEINIT_TRY(StringOf(row, "content_type", where));
        e.event = PEINIT_TRY(StringOf(row, "event", where));
        e.string = PEINIT_TRY(StringOf(row, "string", where));
        e.digest = PEINIT_TRY(StringOf(row, "digest", where));
        r.events.push_back(std::move(e));
    }
    return r;
}

}  // namespace peinit
