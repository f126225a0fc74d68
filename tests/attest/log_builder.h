#pragma once

// Crafted TPM event logs for the reader and posture tests: records in systemd's JSON-SEQ format,
// peinit's content strings compact with sorted keys, digests computed as PID 1 computes them.

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "peinit/sys/package_crypto.h"
#include "peinit/sys/package_format.h"

namespace peinit::testing {

inline std::string Sha256Hex(const std::string& s) {
    return HexEncode(Sha256Of({reinterpret_cast<const std::byte*>(s.data()), s.size()}));
}

// A JSON string literal (enough for the test data: quotes and backslashes).
inline std::string JsonString(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

inline std::string Record(int pcr, const std::string& type, const std::string& event_type,
                          const std::string& string, const std::string& digest = "") {
    return "\x1e{\"pcr\":" + std::to_string(pcr) +
           ",\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"" +
           (digest.empty() ? Sha256Hex(string) : digest) + "\"}],\"content_type\":\"" + type +
           "\",\"content\":{\"string\":" + JsonString(string) + ",\"eventType\":\"" + event_type +
           "\"}}\n";
}

// A peinit event's content: `fields` are "key":value pairs already in JSON (values quoted by
// the caller); keys come out sorted with "event" and "v".
inline std::string PeinitString(const std::string& event,
                                std::map<std::string, std::string> fields) {
    fields["event"] = JsonString(event);
    fields["v"] = "1";
    std::string out = "{";
    for (const auto& [k, v] : fields) out += (out.size() > 1 ? "," : "") + JsonString(k) + ":" + v;
    return out + "}";
}

inline std::string PeinitRecord(const std::string& event, std::map<std::string, std::string> fields,
                                int pcr = 13) {
    return Record(pcr, "peinit", "peinit-" + event, PeinitString(event, std::move(fields)));
}

// A peinit-lock record; each argument is a JSON value ("true", "\"syscall\"").
inline std::string LockRecord(const std::string& requested, const std::string& locked,
                              const std::string& mechanism = "\"syscall\"") {
    return PeinitRecord("lock", {{"requested", requested},
                                 {"locked", locked},
                                 {"mechanism", mechanism},
                                 {"trigger", "\"registry\""}});
}

inline const std::string kSigner = Sha256Hex("image signing key");

struct BootSpec {
    std::vector<std::string> modules{"virtio_blk", "ext4"};
    bool lock = true;
    std::string mechanism = "syscall";
    bool leave = true;
};

// A whole boot's log, as PID 1 writes it, with systemd's phase records on PCR 11.
inline std::string BootLog(const BootSpec& b = {}) {
    std::string log = Record(11, "systemd", "phase", "enter-initrd");
    log += PeinitRecord("image", {{"image_sha256", JsonString(Sha256Hex("image"))},
                                  {"kernel_release", "\"6.1.0-test\""},
                                  {"key_fingerprint", JsonString(kSigner)}});
    log += PeinitRecord("policy", {{"hive_sha256", JsonString(Sha256Hex("hive"))},
                                   {"cmdline", "[\"quiet\"]"},
                                   {"lock_after_boot", b.lock ? "true" : "false"},
                                   {"autoload_policy", "\"disabled\""},
                                   {"signing_policy", "\"enforce\""},
                                   {"blacklist_sha256", JsonString(Sha256Hex("bl"))}});
    std::vector<std::string> lines;
    for (const auto& m : b.modules) {
        log += PeinitRecord("module", {{"name", JsonString(m)},
                                       {"sha256", JsonString(Sha256Hex(m + ".ko"))},
                                       {"package", "\"boot\""},
                                       {"signer", JsonString(kSigner)}});
        lines.push_back(m + " " + Sha256Hex(m + ".ko") + "\n");
    }
    std::sort(lines.begin(), lines.end());
    std::string all;
    for (const auto& l : lines) all += l;
    log += PeinitRecord("module-set", {{"count", std::to_string(b.modules.size())},
                                       {"sha256", JsonString(Sha256Hex(all))}});
    log += LockRecord(b.lock ? "true" : "false", b.lock ? "true" : "false",
                      JsonString(b.lock ? b.mechanism : "none"));
    if (b.leave) {
        log += PeinitRecord("leave-initrd", {});
        log += Record(11, "systemd", "phase", "leave-initrd");
    }
    return log;
}

}  // namespace peinit::testing
