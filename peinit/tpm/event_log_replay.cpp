// The digest check and the replay of peinit/tpm/event_log_read.h: SHA-256 and the extend
// operation are tpm.h's, the same that PID 1's measurements use.

#include "peinit/sys/package_crypto.h"
#include "peinit/tpm/event_log_read.h"
#include "peinit/tpm/tpm.h"

namespace peinit::tpm {

namespace {

std::optional<Digest> DecodeSha256(const std::string& hex) {
    Digest out{};
    if (!HexDecode(hex, reinterpret_cast<std::byte*>(out.data()), out.size())) return std::nullopt;
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
        const Digest want = Sha256(*r.content_string);
        if (want != *digest) {
            problems.push_back({r.number, "digest " + *hex +
                                              " is not the SHA-256 of its content (" + Hex(want) +
                                              "): the record was edited"});
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
        pcr = ExtendDigest(pcr, *digest);
    }
    return pcrs;
}

}  // namespace peinit::tpm
