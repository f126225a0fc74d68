// The digest check and the replay of peinit/tpm/event_log_read.h, in their own object: they need
// SHA-256 (OpenSSL), which peinitctl, reading the log only for its PCR numbers, does not link.

#include <cstring>

#include "peinit/sys/package_crypto.h"
#include "peinit/sys/package_format.h"
#include "peinit/tpm/event_log_read.h"

namespace peinit::tpm {

namespace {

std::optional<Sha256Digest> DecodeSha256(const std::string& hex) {
    Sha256Digest out{};
    if (!HexDecode(hex, out.data(), out.size())) return std::nullopt;
    return out;
}

}  // namespace

std::vector<LogProblem> CheckRecordDigests(const EventLog& log) {
    std::vector<LogProblem> problems;
    for (const auto& r : log.records) {
        const std::string* hex = r.Sha256();
        if (hex == nullptr) {
            problems.push_back({r.number, "no sha256 digest"});
            continue;
        }
        auto digest = DecodeSha256(*hex);
        if (!digest) {
            problems.push_back(
                {r.number, "sha256 digest \"" + *hex + "\" is not 64 lowercase hex digits"});
            continue;
        }
        if (!r.content_string) continue;
        const std::string& s = *r.content_string;
        Sha256Digest want = Sha256Of({reinterpret_cast<const std::byte*>(s.data()), s.size()});
        if (want != *digest) {
            problems.push_back({r.number, "digest " + *hex +
                                              " is not the SHA-256 of its content (" +
                                              HexEncode(want) + "): the record was edited"});
        }
    }
    return problems;
}

std::map<int, PcrValue> ReplaySha256(const EventLog& log) {
    std::map<int, PcrValue> pcrs;
    for (const auto& r : log.records) {
        const std::string* hex = r.Sha256();
        if (hex == nullptr) continue;
        auto digest = DecodeSha256(*hex);
        if (!digest) continue;
        PcrValue& pcr = pcrs.try_emplace(r.pcr, PcrValue{}).first->second;
        std::byte joined[64];
        std::memcpy(joined, pcr.data(), 32);
        std::memcpy(joined + 32, digest->data(), 32);
        Sha256Digest next = Sha256Of(joined);
        std::memcpy(pcr.data(), next.data(), 32);
    }
    return pcrs;
}

}  // namespace peinit::tpm
