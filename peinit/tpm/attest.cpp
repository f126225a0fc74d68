#include "peinit/tpm/attest.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <set>

#include "peinit/core/json.h"
#include "peinit/sys/package_format.h"

namespace peinit::tpm {

namespace {

// Frees what ESYS allocated for us.
template <typename T>
struct EsysOut {
    const Tss2* tss;
    T* p = nullptr;
    explicit EsysOut(const Tss2& t) : tss(&t) {}
    ~EsysOut() {
        if (p != nullptr) tss->Esys_Free(p);
    }
    EsysOut(const EsysOut&) = delete;
    EsysOut& operator=(const EsysOut&) = delete;
};

// Flushes a transient object when it goes out of scope.
struct FlushOnExit {
    EsysContext& tpm;
    ESYS_TR handle;
    ~FlushOnExit() {
        if (handle != ESYS_TR_NONE) tpm.tss().Esys_FlushContext(tpm.get(), handle);
    }
};

TPML_PCR_SELECTION Sha256Selection(const std::vector<int>& pcrs) {
    TPML_PCR_SELECTION sel{};
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    for (int p : pcrs) sel.pcrSelections[0].pcrSelect[p / 8] |= static_cast<uint8_t>(1u << (p % 8));
    return sel;
}

Result<AttestationKey> KeyOf(const Tss2& tss, const TPM2B_PUBLIC& pub, const TPM2B_NAME& name) {
    AttestationKey ak;
    uint8_t buf[sizeof(TPMT_PUBLIC)];
    size_t off = 0;
    TSS2_RC rc = tss.Tss2_MU_TPMT_PUBLIC_Marshal(&pub.publicArea, buf, sizeof buf, &off);
    if (rc != TSS2_RC_SUCCESS) return Err(TssError(tss, "marshaling the AK's public area", rc));
    ak.public_area.assign(buf, buf + off);
    ak.name.assign(name.name, name.name + name.size);
    const TPMS_ECC_POINT& q = pub.publicArea.unique.ecc;
    if (pub.publicArea.type != TPM2_ALG_ECC || q.x.size > 32 || q.y.size > 32) {
        return Err("the TPM returned an AK that is not a P-256 key");
    }
    // Left-pad: a coordinate may come back shorter than 32 bytes.
    std::memcpy(ak.x.data() + 32 - q.x.size, q.x.buffer, q.x.size);
    std::memcpy(ak.y.data() + 32 - q.y.size, q.y.buffer, q.y.size);
    return ak;
}

// PCR values of `pcrs` (sha256) and the update counter they were read at. The TPM returns at
// most eight digests per call: ask again for what is left.
Result<std::pair<uint32_t, std::vector<std::pair<int, PcrValue>>>> ReadPcrs(
    EsysContext& tpm, const std::vector<int>& pcrs) {
    const Tss2& tss = tpm.tss();
    std::set<int> left(pcrs.begin(), pcrs.end());
    std::vector<std::pair<int, PcrValue>> values;
    uint32_t counter = 0;
    bool first = true;
    while (!left.empty()) {
        TPML_PCR_SELECTION in = Sha256Selection({left.begin(), left.end()});
        uint32_t c = 0;
        EsysOut<TPML_PCR_SELECTION> out(tss);
        EsysOut<TPML_DIGEST> digests(tss);
        TSS2_RC rc = tss.Esys_PCR_Read(tpm.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &in, &c,
                                       &out.p, &digests.p);
        if (rc != TSS2_RC_SUCCESS) return Err(TssError(tss, "reading the PCRs", rc));
        if (!first && c != counter) return Err("PCRs changed while they were read");
        first = false;
        counter = c;
        std::size_t k = 0;
        bool progress = false;
        for (uint32_t s = 0; s < out.p->count; ++s) {
            const TPMS_PCR_SELECTION& sel = out.p->pcrSelections[s];
            if (sel.hash != TPM2_ALG_SHA256) continue;
            for (int p = 0; p < sel.sizeofSelect * 8; ++p) {
                if (!(sel.pcrSelect[p / 8] & (1u << (p % 8)))) continue;
                if (k >= digests.p->count || digests.p->digests[k].size != 32) {
                    return Err("the TPM returned a malformed PCR read");
                }
                PcrValue v{};
                std::memcpy(v.data(), digests.p->digests[k].buffer, 32);
                ++k;
                if (left.erase(p) != 0) {
                    values.emplace_back(p, v);
                    progress = true;
                }
            }
        }
        if (!progress) {
            return Err("the TPM has no sha256 bank for PCR " + std::to_string(*left.begin()));
        }
    }
    std::sort(values.begin(), values.end());
    return std::make_pair(counter, values);
}

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

std::string Base64Encode(const uint8_t* data, std::size_t size) {
    std::string out;
    out.reserve((size + 2) / 3 * 4);
    for (std::size_t i = 0; i < size; i += 3) {
        uint32_t n = static_cast<uint32_t>(data[i]) << 16;
        if (i + 1 < size) n |= static_cast<uint32_t>(data[i + 1]) << 8;
        if (i + 2 < size) n |= data[i + 2];
        out.push_back(kBase64[(n >> 18) & 63]);
        out.push_back(kBase64[(n >> 12) & 63]);
        out.push_back(i + 1 < size ? kBase64[(n >> 6) & 63] : '=');
        out.push_back(i + 2 < size ? kBase64[n & 63] : '=');
    }
    return out;
}

std::string Hex(const Bytes& data) {
    return HexEncode(reinterpret_cast<const std::byte*>(data.data()), data.size());
}

std::string AttestationKey::Pem() const {
    // SubjectPublicKeyInfo for id-ecPublicKey on prime256v1, uncompressed point (RFC 5480).
    static constexpr uint8_t kPrefix[] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48,
                                          0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48,
                                          0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04};
    Bytes der(kPrefix, kPrefix + sizeof kPrefix);
    der.insert(der.end(), x.begin(), x.end());
    der.insert(der.end(), y.begin(), y.end());
    std::string b64 = Base64Encode(der.data(), der.size());
    std::string pem = "-----BEGIN PUBLIC KEY-----\n";
    for (std::size_t i = 0; i < b64.size(); i += 64) pem += b64.substr(i, 64) + "\n";
    return pem + "-----END PUBLIC KEY-----\n";
}

TPM2B_PUBLIC AttestationKeyTemplate() {
    TPM2B_PUBLIC t{};
    TPMT_PUBLIC& p = t.publicArea;
    p.type = TPM2_ALG_ECC;
    p.nameAlg = TPM2_ALG_SHA256;
    p.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                         TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                         TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT;
    p.authPolicy.size = 0;
    TPMS_ECC_PARMS& ecc = p.parameters.eccDetail;
    ecc.symmetric.algorithm = TPM2_ALG_NULL;
    ecc.scheme.scheme = TPM2_ALG_ECDSA;
    ecc.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    ecc.curveID = TPM2_ECC_NIST_P256;
    ecc.kdf.scheme = TPM2_ALG_NULL;
    p.unique.ecc.x.size = 0;
    p.unique.ecc.y.size = 0;
    return t;
}

namespace {

// Creates the AK and leaves it loaded: the caller flushes `handle`.
Result<AttestationKey> CreateLoaded(EsysContext& tpm, ESYS_TR& handle) {
    const Tss2& tss = tpm.tss();
    TPM2B_SENSITIVE_CREATE sensitive{};
    TPM2B_PUBLIC in_public = AttestationKeyTemplate();
    TPM2B_DATA outside{};
    TPML_PCR_SELECTION creation_pcrs{};
    EsysOut<TPM2B_PUBLIC> out_public(tss);
    EsysOut<TPM2B_CREATION_DATA> creation_data(tss);
    EsysOut<TPM2B_DIGEST> creation_hash(tss);
    EsysOut<TPMT_TK_CREATION> ticket(tss);
    TSS2_RC rc = tss.Esys_CreatePrimary(tpm.get(), ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD,
                                        ESYS_TR_NONE, ESYS_TR_NONE, &sensitive, &in_public,
                                        &outside, &creation_pcrs, &handle, &out_public.p,
                                        &creation_data.p, &creation_hash.p, &ticket.p);
    if (rc != TSS2_RC_SUCCESS) {
        handle = ESYS_TR_NONE;
        return Err(TssError(tss,
                            "creating the attestation key (CreatePrimary, endorsement "
                            "hierarchy)",
                            rc));
    }
    EsysOut<TPM2B_NAME> name(tss);
    rc = tss.Esys_TR_GetName(tpm.get(), handle, &name.p);
    if (rc != TSS2_RC_SUCCESS) return Err(TssError(tss, "reading the attestation key's name", rc));
    return KeyOf(tss, *out_public.p, *name.p);
}

}  // namespace

Result<AttestationKey> CreateAttestationKey(EsysContext& tpm) {
    FlushOnExit flush{tpm, ESYS_TR_NONE};
    return CreateLoaded(tpm, flush.handle);
}

Result<QuoteResult> TakeQuote(EsysContext& tpm, const std::vector<int>& pcrs, const Bytes& nonce) {
    const Tss2& tss = tpm.tss();
    if (pcrs.empty()) return Err("no PCR to quote");
    for (int p : pcrs) {
        if (p < 0 || p > 23) return Err("PCR " + std::to_string(p) + " is not a PCR (0-23)");
    }
    if (nonce.size() > sizeof(TPM2B_DATA::buffer)) {
        return Err("the nonce is " + std::to_string(nonce.size()) + " bytes; at most " +
                   std::to_string(sizeof(TPM2B_DATA::buffer)) + " fit a quote");
    }
    FlushOnExit flush{tpm, ESYS_TR_NONE};
    QuoteResult q;
    q.ak = PEINIT_TRY(CreateLoaded(tpm, flush.handle));
    TPM2B_DATA qualifying{};
    qualifying.size = static_cast<UINT16>(nonce.size());
    std::copy(nonce.begin(), nonce.end(), qualifying.buffer);
    TPMT_SIG_SCHEME scheme{};
    scheme.scheme = TPM2_ALG_NULL;  // the key's own: ECDSA with SHA-256
    TPML_PCR_SELECTION selection = Sha256Selection(pcrs);
    // A PCR extended between the quote and the read would make the values disagree with the
    // quote's digest: read before and after and take it again when the counter moved.
    for (int attempt = 0;; ++attempt) {
        auto before = PEINIT_TRY(ReadPcrs(tpm, pcrs));
        EsysOut<TPM2B_ATTEST> quoted(tss);
        EsysOut<TPMT_SIGNATURE> signature(tss);
        TSS2_RC rc =
            tss.Esys_Quote(tpm.get(), flush.handle, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                           &qualifying, &scheme, &selection, &quoted.p, &signature.p);
        if (rc != TSS2_RC_SUCCESS) return Err(TssError(tss, "quoting the PCRs", rc));
        auto after = PEINIT_TRY(ReadPcrs(tpm, pcrs));
        if (before.first != after.first || before.second != after.second) {
            if (attempt < 5) continue;
            return Err("the PCRs keep changing; no consistent quote");
        }
        q.message.assign(quoted.p->attestationData, quoted.p->attestationData + quoted.p->size);
        uint8_t buf[sizeof(TPMT_SIGNATURE)];
        size_t off = 0;
        rc = tss.Tss2_MU_TPMT_SIGNATURE_Marshal(signature.p, buf, sizeof buf, &off);
        if (rc != TSS2_RC_SUCCESS) return Err(TssError(tss, "marshaling the signature", rc));
        q.signature.assign(buf, buf + off);
        q.pcrs = std::move(after.second);
        return q;
    }
}

Bytes CheckquotePcrsFile(const std::vector<std::pair<int, PcrValue>>& pcrs) {
    std::vector<int> ids;
    for (const auto& [p, v] : pcrs) ids.push_back(p);
    TPML_PCR_SELECTION sel = Sha256Selection(ids);
    // Digests in the TPM's order (ascending PCR), at most eight per TPML_DIGEST, as PCR_Read
    // returns them.
    std::vector<TPML_DIGEST> lists;
    for (std::size_t i = 0; i < pcrs.size(); ++i) {
        if (i % 8 == 0) {
            lists.emplace_back();
            std::memset(&lists.back(), 0, sizeof(TPML_DIGEST));
        }
        TPML_DIGEST& d = lists.back();
        d.digests[d.count].size = 32;
        std::memcpy(d.digests[d.count].buffer, pcrs[i].second.data(), 32);
        ++d.count;
    }
    Bytes out(sizeof sel);
    std::memcpy(out.data(), &sel, sizeof sel);
    uint32_t count = static_cast<uint32_t>(lists.size());
    const auto* c = reinterpret_cast<const uint8_t*>(&count);
    out.insert(out.end(), c, c + sizeof count);
    for (const auto& d : lists) {
        const auto* b = reinterpret_cast<const uint8_t*>(&d);
        out.insert(out.end(), b, b + sizeof d);
    }
    return out;
}

std::string BundleJson(const QuoteResult& q, const Bytes& nonce, const std::string& log,
                       const std::string& log_path) {
    toml::table pcrs;
    for (const auto& [p, v] : q.pcrs)
        pcrs.insert(std::to_string(p), Hex(Bytes(v.begin(), v.end())));
    toml::table doc{
        {"version", 1},
        {"kind", "peinit-attestation"},
        {"measured", true},
        {"nonce", Hex(nonce)},
        {"ak", toml::table{{"public_pem", q.ak.Pem()},
                           {"name", Hex(q.ak.name)},
                           {"public", Hex(q.ak.public_area)}}},
        {"pcr_bank", "sha256"},
        {"pcrs", std::move(pcrs)},
        {"quote", toml::table{{"message", Hex(q.message)}, {"signature", Hex(q.signature)}}},
        {"log", Base64Encode(reinterpret_cast<const uint8_t*>(log.data()), log.size())},
        {"log_path", log_path},
    };
    return FormatJson(doc);
}

std::string NotMeasuredBundleJson(const Bytes& nonce, const std::string& reason) {
    toml::table doc{{"version", 1},
                    {"kind", "peinit-attestation"},
                    {"measured", false},
                    {"reason", reason},
                    {"nonce", Hex(nonce)}};
    return FormatJson(doc);
}

}  // namespace peinit::tpm
