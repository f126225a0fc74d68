#include "peinit/tpm/event_log_read.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "peinit/record/json.h"

namespace peinit::tpm {

namespace {

constexpr char kRecordSeparator = '\x1e';
constexpr int kMaxPcr = 23;

Result<LogRecord> ParseRecord(std::string_view text) {
    auto doc = JsonDocument::Parse(text);
    if (!doc) return doc.error();
    JsonValue root = doc->root();
    if (!root.IsObject()) return Err("not a JSON object but " + root.TypeName());
    LogRecord r;
    int64_t pcr = PEINIT_TRY(root.IntAt("pcr"));
    if (pcr < 0 || pcr > kMaxPcr)
        return Err("pcr: " + std::to_string(pcr) + " is not a PCR (0-23)");
    r.pcr = static_cast<int>(pcr);
    JsonValue digests = root.Get("digests");
    if (!digests.IsArray()) return Err("digests: must be an array, not " + digests.TypeName());
    for (std::size_t i = 0; i < digests.Size(); ++i) {
        JsonValue d = digests.At(i);
        std::string at = "digests[" + std::to_string(i) + "].";
        if (!d.IsObject()) return Err("digests[" + std::to_string(i) + "]: must be an object");
        auto alg = d.StringAt("hashAlg");
        if (!alg) return alg.error().Context(at);
        auto hex = d.StringAt("digest");
        if (!hex) return hex.error().Context(at);
        r.digests.push_back({*alg, *hex});
    }
    if (r.digests.empty()) return Err("digests: empty");
    JsonValue type = root.Get("content_type");
    if (type.IsString()) {
        r.content_type = type.String();
    } else if (!type.IsNull()) {
        return Err("content_type: must be a string, not " + type.TypeName());
    }
    JsonValue content = root.Get("content");
    if (content.IsObject()) {
        JsonValue s = content.Get("string");
        if (s.IsString()) {
            r.content_string = s.String();
        } else if (!s.IsNull()) {
            return Err("content.string: must be a string, not " + s.TypeName());
        }
        JsonValue e = content.Get("eventType");
        if (e.IsString()) r.event_type = e.String();
    }
    if (r.content_type == kPeinitContentType && !r.content_string) {
        return Err("content.string: missing in a peinit record");
    }
    r.json = std::string(text);
    return r;
}

std::string Trim(std::string_view s) {
    std::size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    std::size_t e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

}  // namespace

const std::string* LogRecord::Sha256() const {
    for (const auto& d : digests) {
        if (d.hash_alg == "sha256") return &d.digest;
    }
    return nullptr;
}

std::string LogProblem::ToString() const {
    return record > 0 ? "record " + std::to_string(record) + ": " + message : message;
}

EventLog ParseEventLog(std::string_view text) {
    EventLog log;
    std::size_t first = text.find(kRecordSeparator);
    if (first == std::string_view::npos) first = text.size();
    if (!Trim(text.substr(0, first)).empty()) {
        log.problems.push_back({0, "text before the first record separator (0x1E): not JSON-SEQ"});
    }
    std::size_t pos = first;
    while (pos < text.size()) {
        std::size_t next = text.find(kRecordSeparator, pos + 1);
        if (next == std::string_view::npos) next = text.size();
        std::string_view body = text.substr(pos + 1, next - pos - 1);
        pos = next;
        int number = ++log.record_count;
        // RFC 7464: a record ends with a line feed; one without it was cut short (a writer
        // that died mid-record) and must not be used.
        if (body.empty() || body.back() != '\n') {
            log.problems.push_back({number, "truncated (no line feed at its end)"});
            continue;
        }
        auto record = ParseRecord(Trim(body));
        if (!record) {
            log.problems.push_back({number, record.error().message()});
            continue;
        }
        record->number = number;
        log.records.push_back(std::move(*record));
    }
    return log;
}

Result<EventLog> ReadEventLog(const std::string& path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoErr("cannot open " + path);
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            return ErrnoErr("cannot read " + path, err);
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
    }
    close(fd);
    return ParseEventLog(text);
}

std::vector<int> PcrsOf(const EventLog& log, std::string_view content_type) {
    std::set<int> pcrs;
    for (const auto& r : log.records) {
        if (r.content_type == content_type) pcrs.insert(r.pcr);
    }
    return {pcrs.begin(), pcrs.end()};
}

}  // namespace peinit::tpm
