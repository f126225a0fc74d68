#pragma once

// Reading systemd's user-space TPM event log (/run/log/systemd/tpm2-measure.log): RFC 7464
// JSON-SEQ, each record 0x1E, one compact JSON object, "\n". A record is
//
//   {"pcr":13,"digests":[{"hashAlg":"sha256","digest":"<hex>"}],
//    "content_type":"peinit","content":{"string":"<S>","eventType":"peinit-lock"}}
//
// (systemd writes "systemd" records the same way, with its own event types). The writer is
// peinit/tpm/event_log.h; this is the reader a verifier replays: records in log order, every
// malformed one reported with its number and skipped (a skipped record cannot be replayed, so
// the PCR comparison then fails as well), each string record's digest checked against
// SHA-256(content.string), and the sha256 bank replayed per PCR from all zeros.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "peinit/tpm/tpm.h"
#include <vector>

#include "peinit/core/result.h"

namespace peinit::tpm {

inline constexpr const char* kEventLogPath = "/run/log/systemd/tpm2-measure.log";
inline constexpr const char* kPeinitContentType = "peinit";

struct LogDigest {
    std::string hash_alg;  // "sha256", "sha1", ... as written
    std::string digest;    // lowercase hex, as written
};

// One record as read. Field names follow the JSON keys.
struct LogRecord {
    int number = 0;  // 1-based position in the log
    int pcr = -1;
    std::vector<LogDigest> digests;
    std::string content_type;                   // "peinit", "systemd", ...
    std::optional<std::string> content_string;  // content.string, when present
    std::string event_type;                     // content.eventType, "" when absent
    std::string json;                           // the record's JSON text, for messages

    // The sha256 digest's hex, or nullptr when the record has none.
    const std::string* Sha256() const;
};

// A problem with one record (record > 0) or with the file (record 0).
struct LogProblem {
    int record = 0;
    std::string message;
    // "record 4: digest does not match ..." (or the message alone for record 0).
    std::string ToString() const;
};

struct EventLog {
    std::vector<LogRecord> records;    // the well-formed records, in log order
    std::vector<LogProblem> problems;  // malformed records, in log order
    int record_count = 0;              // well-formed and malformed
};

// Parses JSON-SEQ text. Never fails: malformed records are problems (not JSON, a missing or
// mistyped field, a PCR outside 0-23, text outside a record).
EventLog ParseEventLog(std::string_view text);

// Reads and parses `path`. The error (unreadable file) names the path.
Result<EventLog> ReadEventLog(const std::string& path);

// The PCRs that records of `content_type` extend, ascending.
std::vector<int> PcrsOf(const EventLog& log, std::string_view content_type);

// A PCR of the sha256 bank (tpm.h's Digest: the same 32 bytes).
using PcrValue = Digest;

// Every record whose sha256 digest is not SHA-256(content.string) (or that has no sha256
// digest, or a string record whose digest is not 64 hex digits): one problem per record.
// Records without a content string (other producers' binary events) cannot be checked here
// and are not problems.
std::vector<LogProblem> CheckRecordDigests(const EventLog& log);

// The sha256 bank replayed from all zeros: PCR := SHA-256(PCR || digest) for each record in
// log order, per PCR. Records whose sha256 digest is not 64 hex digits are skipped
// (CheckRecordDigests reports them).
std::map<int, PcrValue> ReplaySha256(const EventLog& log);

}  // namespace peinit::tpm
