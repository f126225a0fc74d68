#pragma once

// The measured-boot event and its log, in systemd's user-space TPM event log format so
// that systemd-pcrlock and other readers of that log replay peinit's measurements with
// systemd's own:
//
//   /run/log/systemd/tpm2-measure.log, RFC 7464 JSON-SEQ: each record is 0x1E, one compact JSON
//   object on a single line, "\n". peinit's records are
//
//   {"pcr":N,"digests":[{"hashAlg":"sha256","digest":"<hex SHA-256 of S>"}],
//    "content_type":"peinit","content":{"string":S,"eventType":"peinit-<event>"}}
//
//   (one line, keys in exactly this order) where S is the event string below. The digest
//   extended into PCR N is SHA-256 of S's bytes, so a verifier recomputes it from the log alone.
//
// The event string S is compact JSON (no whitespace), keys sorted bytewise, always holding
// "event":"<event>" and "v":1, with the event's fields (strings, booleans, integers, arrays of
// strings): see the Make*Event functions. It is the one place the measured bytes are formatted:
// the reader and replayer (event_log_read.h) parse it back.
//
// The log is appended to the way systemd does (src/shared/tpm2-util.c): the file is opened
// (created 0600, parents 0755), locked with flock(LOCK_EX) for the whole extend-and-append, and
// marked with the sticky bit while a record is being written, cleared when it is complete; a log
// found with the bit set was left half-written by someone ("tainted"), which is reported and
// appended to anyway, as systemd does.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "peinit/core/result.h"

namespace peinit::tpm {

inline constexpr const char* kUserspaceLogPath = "/run/log/systemd/tpm2-measure.log";
inline constexpr char kRecordSeparator = '\x1e';
inline constexpr int kEventVersion = 1;

// The event names ("peinit-" + name is the log's eventType).
inline constexpr const char* kEventImage = "image";
inline constexpr const char* kEventPolicy = "policy";
inline constexpr const char* kEventModule = "module";
inline constexpr const char* kEventModuleSet = "module-set";
inline constexpr const char* kEventLock = "lock";
inline constexpr const char* kEventLeaveInitrd = "leave-initrd";

using EventValue = std::variant<std::string, bool, int64_t, std::vector<std::string>>;

// One measurement: its name and fields ("event" and "v" are added by EventString).
struct MeasurementEvent {
    std::string event;
    std::map<std::string, EventValue> fields;
};

MeasurementEvent MakeImageEvent(std::string image_sha256, std::string kernel_release,
                                std::string key_fingerprint);
MeasurementEvent MakePolicyEvent(std::string hive_sha256, std::vector<std::string> cmdline,
                                 bool lock_after_boot, std::string autoload_policy,
                                 std::string signing_policy, std::string blacklist_sha256);
MeasurementEvent MakeModuleEvent(std::string name, std::string sha256, std::string package,
                                 std::string signer);
MeasurementEvent MakeModuleSetEvent(int64_t count, std::string sha256);
// mechanism: "syscall", "fallback" or "none".
MeasurementEvent MakeLockEvent(bool requested, bool locked, std::string mechanism,
                               std::string trigger);
MeasurementEvent MakeLeaveInitrdEvent();

// S: the compact, key-sorted JSON of the event.
std::string EventString(const MeasurementEvent& event);

// A JSON string literal (with its quotes) of `text`: '"', '\\' and control characters escaped
// (\b \f \n \r \t, else \u00XX); bytes that are not valid UTF-8 become \ufffd, so the output is
// always valid JSON.
std::string JsonQuote(std::string_view text);

// One log record, 0x1E ... "\n" included. `content` is the content object's JSON.
std::string FormatLogRecord(int pcr, const std::string& digest_hex, std::string_view content_type,
                      std::string_view content_json);
// peinit's record for event string `s` ("content_type":"peinit").
std::string PeinitLogRecord(int pcr, const std::string& event, const std::string& s);
// systemd-pcrphase's record for a boot phase word ("enter-initrd", "leave-initrd") in PCR 11:
// content_type "systemd", content {"string":WORD,"eventType":"phase"}, digest SHA-256(WORD).
std::string PhaseLogRecord(int pcr, const std::string& word);

// The log file, open and locked (flock LOCK_EX) for as long as the object lives; the sticky
// bit is set while it is open and cleared by Finish() once the record is complete.
class UserspaceLog {
  public:
    // Creates the parent directories (0755) and the file (0600) when missing. The error names
    // the path.
    static Result<UserspaceLog> Open(const std::string& path);
    UserspaceLog(UserspaceLog&& other) noexcept;
    UserspaceLog& operator=(UserspaceLog&&) = delete;
    UserspaceLog(const UserspaceLog&) = delete;
    UserspaceLog& operator=(const UserspaceLog&) = delete;
    ~UserspaceLog();

    // The log carried the sticky bit when it was opened: a writer died mid-record.
    bool tainted() const { return tainted_; }
    // Appends `record` at the end (all of it, or an error naming the path).
    Result<void> Append(std::string_view record);
    // Clears the sticky bit: the record is complete.
    Result<void> Finish();

  private:
    UserspaceLog(int fd, std::string path, bool tainted)
        : fd_(fd), path_(std::move(path)), tainted_(tainted) {}
    int fd_ = -1;
    std::string path_;
    bool tainted_ = false;
};

}  // namespace peinit::tpm
