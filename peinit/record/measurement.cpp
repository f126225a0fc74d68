#include "peinit/record/measurement.h"

#include <toml++/toml.h>


#include "peinit/core/json.h"
#include "peinit/record/record.h"

namespace peinit {

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

Result<MeasurementRecord> MeasurementRecord::FromJson(std::string_view text,
                                                      const std::string& file) {
    auto r = PEINIT_TRY(ReadRecord<MeasurementRecord>(
        text, file, kVersion, [](RecordFields& f, MeasurementRecord& m) {
            f.Get("version", m.version)
                .Require("state", m.state)
                .Require("reason", m.reason)
                .Require("error", m.error)
                .Require("tpm", m.tpm)
                .Require("pcr", m.pcr)
                .Require("log", m.log)
                .Require("module_count", m.module_count)
                .Require("module_set_sha256", m.module_set_sha256)
                .RequireObjects("events", m.events, [](RecordFields& e, Event& v) {
                    e.Require("pcr", v.pcr)
                        .Require("content_type", v.content_type)
                        .Require("event", v.event)
                        .Require("string", v.string)
                        .Require("digest", v.digest);
                });
        }));
    if (r.state != kMeasured && r.state != kNotMeasured && r.state != kFailed) {
        return Err(file + ": \"state\" must be \"measured\", \"not-measured\" or \"failed\", not \"" +
                   r.state + "\"");
    }
    return r;
}

}  // namespace peinit
