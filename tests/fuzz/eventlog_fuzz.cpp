// libFuzzer target: the TPM event log reader (peinit/tpm/event_log_read.h), which peinit-verify
// runs on a log that came from another machine and peinitctl on the local one.
//
// Input: the log text (JSON-SEQ records, 0x1E ... "\n", in any state of repair).
//
// Checks what event_log_read.h promises: parsing never fails; well-formed records keep log
// order with 1-based numbers within the record count and a PCR in 0-23; a digest problem names
// a well-formed record; the replay covers exactly the PCRs of records with a well-formed sha256
// digest; and a peinit record with a printable ASCII event string, written again by the log
// writer (event_log.h), reads back with the same PCR, digest, content type and string.

#include <set>

#include "peinit/tpm/event_log.h"
#include "peinit/tpm/event_log_read.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace peinit::tpm;

bool PrintableAscii(const std::string& s) {
    for (unsigned char c : s) {
        if (c < 0x20 || c > 0x7e) return false;
    }
    return true;
}

bool Sha256Hex(const std::string& s) {
    if (s.size() != 64) return false;
    for (char c : s) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const EventLog log = ParseEventLog(peinit::fuzz::AsText(data, size));
    FUZZ_CHECK(log.record_count >= static_cast<int>(log.records.size()), "record count");
    std::set<int> numbers;
    std::set<int> replayable;
    int last = 0;
    for (const LogRecord& r : log.records) {
        FUZZ_CHECK(r.number > last && r.number <= log.record_count,
                   "record " + std::to_string(r.number) + " out of order or range");
        last = r.number;
        numbers.insert(r.number);
        FUZZ_CHECK(r.pcr >= 0 && r.pcr <= 23, "PCR " + std::to_string(r.pcr));
        if (const std::string* hex = r.Sha256(); hex != nullptr && Sha256Hex(*hex)) {
            replayable.insert(r.pcr);
        }
    }
    for (const LogProblem& p : CheckRecordDigests(log)) {
        FUZZ_CHECK(numbers.count(p.record) == 1,
                   "digest problem for record " + std::to_string(p.record) + ": " + p.message);
    }
    std::set<int> replayed;
    for (const auto& [pcr, value] : ReplaySha256(log)) replayed.insert(pcr);
    FUZZ_CHECK(replayed == replayable, "replayed PCRs differ from the records' PCRs");

    for (const LogRecord& r : log.records) {
        const std::string* hex = r.Sha256();
        if (r.content_type != kPeinitContentType || !r.content_string || hex == nullptr ||
            !Sha256Hex(*hex) || !PrintableAscii(*r.content_string) ||
            !PrintableAscii(r.event_type)) {
            continue;
        }
        const std::string again = FormatLogRecord(
            r.pcr, *hex, r.content_type,
            "{\"string\":" + JsonQuote(*r.content_string) +
                ",\"eventType\":" + JsonQuote(r.event_type) + "}");
        const EventLog back = ParseEventLog(again);
        FUZZ_CHECK(back.records.size() == 1 && back.problems.empty(), "rewritten: " + again);
        const LogRecord& b = back.records[0];
        FUZZ_CHECK(b.pcr == r.pcr && b.Sha256() != nullptr && *b.Sha256() == *hex &&
                       b.content_type == r.content_type && b.content_string == r.content_string &&
                       b.event_type == r.event_type,
                   "rewritten record reads back differently: " + again);
    }
    return 0;
}
