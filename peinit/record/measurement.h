#pragma once

// /run/peinit/measurements.json: what PID 1 measured into the TPM, for `peinitctl
// status`. The same events as the user-space TPM event log (/run/log/systemd/tpm2-measure.log,
// peinit/tpm/event_log.h), plus the state of the measurement: one type shared by the writer
// (PID 1, peinit/tpm/measure.h) and the reader (peinitctl, peinit/core/status.h), with ToJson
// and FromJson side by side.
//
// Compatibility as for image.json: `version` is the major version; a reader accepts its own and
// older ones, ignores fields it does not know, and refuses a newer major version naming both.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/record/record.h"

namespace peinit {

inline constexpr const char* kMeasurementRecordPath = "/run/peinit/measurements.json";

struct MeasurementRecord {
    static constexpr int kVersion = 1;
    // "measured": every event was extended and logged (so far, while PID 1 runs);
    // "not-measured": nothing was (no TPM, or measurement is off), `reason` says why;
    // "failed": a TPM or log error stopped measurement, `error` says which; the events before
    // it were extended and logged.
    static constexpr const char* kMeasured = "measured";
    static constexpr const char* kNotMeasured = "not-measured";
    static constexpr const char* kFailed = "failed";

    struct Event {
        int pcr = 0;
        std::string content_type;  // "peinit", or "systemd" for a boot phase in PCR 11
        std::string event;         // "image", "policy", "module", ..., or "phase"
        std::string string;        // the measured string S (its SHA-256 was extended)
        std::string digest;        // lowercase hex SHA-256 of `string`
        template <typename F>
        void Members(F& f) {
            f.Required("pcr", pcr)
                .Required("content_type", content_type)
                .Required("event", event)
                .Required("string", string)
                .Required("digest", digest);
        }
    };

    int version = kVersion;
    std::string state = kNotMeasured;
    std::string reason;  // why not measured: "no TPM"
    std::string error;   // why measurement stopped (state "failed")
    std::string tpm;     // the TCTI: "device:/dev/tpmrm0"
    int pcr = 0;         // the PCR peinit's events go to
    std::string log;     // the user-space event log's path
    // The module-set event's fields once it was measured (count -1: not yet).
    int64_t module_count = -1;
    std::string module_set_sha256;
    std::vector<Event> events;  // in extend order

    // Every member is required.
    template <typename F>
    void Members(F& f) {
        f("version", version)
            .Required("state", state)
            .Required("reason", reason)
            .Required("error", error)
            .Required("tpm", tpm)
            .Required("pcr", pcr)
            .Required("log", log)
            .Required("module_count", module_count)
            .Required("module_set_sha256", module_set_sha256)
            .Required("events", events);
    }
    // The record as JSON (peinit/core/json.h), keys sorted, one trailing newline.
    std::string ToJson() const { return WriteRecordJson(*this); }
    // Errors name `file` (and the line for malformed JSON).
    static Result<MeasurementRecord> FromJson(std::string_view text, const std::string& file);
};

}  // namespace peinit
