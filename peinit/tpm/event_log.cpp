#include "peinit/tpm/event_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "peinit/tpm/tpm.h"

namespace peinit::tpm {

namespace {

// The length of the valid UTF-8 sequence at `s[i]`, 0 when it is not one (overlong forms,
// surrogates and code points above U+10FFFF are invalid, as RFC 3629 says).
std::size_t Utf8Length(std::string_view s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    uint32_t cp = 0;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

std::string ValueJson(const EventValue& value) {
    if (const auto* s = std::get_if<std::string>(&value)) return JsonQuote(*s);
    if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
    if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
    std::string out = "[";
    for (const auto& s : std::get<std::vector<std::string>>(value)) {
        if (out.size() > 1) out += ',';
        out += JsonQuote(s);
    }
    return out + "]";
}

}  // namespace

std::string JsonQuote(std::string_view text) {
    std::string out = "\"";
    out.reserve(text.size() + 2);
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else if (c < 0x80) {
                    out += static_cast<char>(c);
                } else if (std::size_t n = Utf8Length(text, i); n != 0) {
                    out.append(text.substr(i, n));
                    i += n;
                    continue;
                } else {
                    out += "\\ufffd";
                }
        }
        ++i;
    }
    return out + "\"";
}

MeasurementEvent MakeImageEvent(std::string image_sha256, std::string kernel_release,
                                std::string key_fingerprint) {
    return {kEventImage,
            {{"image_sha256", std::move(image_sha256)},
             {"kernel_release", std::move(kernel_release)},
             {"key_fingerprint", std::move(key_fingerprint)}}};
}

MeasurementEvent MakePolicyEvent(std::string hive_sha256, std::vector<std::string> cmdline,
                                 bool lock_after_boot, std::string autoload_policy,
                                 std::string signing_policy, std::string blacklist_sha256) {
    return {kEventPolicy,
            {{"hive_sha256", std::move(hive_sha256)},
             {"cmdline", std::move(cmdline)},
             {"lock_after_boot", lock_after_boot},
             {"autoload_policy", std::move(autoload_policy)},
             {"signing_policy", std::move(signing_policy)},
             {"blacklist_sha256", std::move(blacklist_sha256)}}};
}

MeasurementEvent MakeModuleEvent(std::string name, std::string sha256, std::string package,
                                 std::string signer) {
    return {kEventModule,
            {{"name", std::move(name)},
             {"sha256", std::move(sha256)},
             {"package", std::move(package)},
             {"signer", std::move(signer)}}};
}

MeasurementEvent MakeModuleSetEvent(int64_t count, std::string sha256) {
    return {kEventModuleSet, {{"count", count}, {"sha256", std::move(sha256)}}};
}

MeasurementEvent MakeLockEvent(bool requested, bool locked, std::string mechanism,
                               std::string trigger) {
    return {kEventLock,
            {{"requested", requested},
             {"locked", locked},
             {"mechanism", std::move(mechanism)},
             {"trigger", std::move(trigger)}}};
}

MeasurementEvent MakeLeaveInitrdEvent() { return {kEventLeaveInitrd, {}}; }

std::string EventString(const MeasurementEvent& event) {
    std::map<std::string, EventValue> all = event.fields;
    all["event"] = event.event;
    all["v"] = static_cast<int64_t>(kEventVersion);
    std::string out = "{";
    for (const auto& [key, value] : all) {  // std::map: bytewise sorted keys
        if (out.size() > 1) out += ',';
        out += JsonQuote(key);
        out += ':';
        out += ValueJson(value);
    }
    return out + "}";
}

std::string FormatLogRecord(int pcr, const std::string& digest_hex, std::string_view content_type,
                      std::string_view content_json) {
    std::string out;
    out += kRecordSeparator;
    out += "{\"pcr\":" + std::to_string(pcr) +
           ",\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"" + digest_hex +
           "\"}],\"content_type\":" + JsonQuote(content_type) + ",\"content\":";
    out += content_json;
    out += "}\n";
    return out;
}

std::string PeinitLogRecord(int pcr, const std::string& event, const std::string& s) {
    return FormatLogRecord(pcr, Hex(Sha256(s)), "peinit",
                     "{\"string\":" + JsonQuote(s) + ",\"eventType\":" +
                         JsonQuote("peinit-" + event) + "}");
}

std::string PhaseLogRecord(int pcr, const std::string& word) {
    return FormatLogRecord(pcr, Hex(Sha256(word)), "systemd",
                     "{\"string\":" + JsonQuote(word) + ",\"eventType\":\"phase\"}");
}

Result<UserspaceLog> UserspaceLog::Open(const std::string& path) {
    std::error_code ec;
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    if (!parent.empty()) {
        std::filesystem::create_directories(parent, ec);
        if (ec) return Err("measurement log " + path + ": " + ec.message(), ec.value());
        // As systemd's mkdir_parents(0755): directories made here are not left umask-narrowed.
        std::filesystem::permissions(parent,
                                     std::filesystem::perms::owner_all |
                                         std::filesystem::perms::group_read |
                                         std::filesystem::perms::group_exec |
                                         std::filesystem::perms::others_read |
                                         std::filesystem::perms::others_exec,
                                     ec);
    }
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW, 0600);
    if (fd < 0) return Err("measurement log " + path + ": open: " + std::strerror(errno), errno);
    auto fail = [&](const char* what) {
        int err = errno;
        ::close(fd);
        return Err("measurement log " + path + ": " + what + ": " + std::strerror(err), err);
    };
    while (::flock(fd, LOCK_EX) < 0) {
        if (errno != EINTR) return fail("flock");
    }
    struct stat st {};
    if (::fstat(fd, &st) < 0) return fail("fstat");
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return Err("measurement log " + path + ": not a regular file", EINVAL);
    }
    const bool tainted = (st.st_mode & S_ISVTX) != 0;
    if (::fchmod(fd, 0600 | S_ISVTX) < 0) return fail("fchmod");
    return UserspaceLog(fd, path, tainted);
}

UserspaceLog::UserspaceLog(UserspaceLog&& other) noexcept
    : fd_(other.fd_), path_(std::move(other.path_)), tainted_(other.tainted_) {
    other.fd_ = -1;
}

UserspaceLog::~UserspaceLog() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock; the sticky bit stays if not Finish()ed
}

Result<void> UserspaceLog::Append(std::string_view record) {
    if (::lseek(fd_, 0, SEEK_END) < 0) {
        return Err("measurement log " + path_ + ": lseek: " + std::strerror(errno), errno);
    }
    while (!record.empty()) {
        ssize_t n = ::write(fd_, record.data(), record.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            return Err("measurement log " + path_ + ": write: " + std::strerror(err), err);
        }
        record.remove_prefix(static_cast<std::size_t>(n));
    }
    return Ok();
}

Result<void> UserspaceLog::Finish() {
    if (::fchmod(fd_, 0600) < 0) {
        return Err("measurement log " + path_ + ": fchmod: " + std::strerror(errno), errno);
    }
    return Ok();
}

}  // namespace peinit::tpm
