#include "peinit/verify/verifier.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "peinit/tpm/tss2.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <set>

#include "peinit/sys/package_crypto.h"
#include "peinit/sys/package_format.h"
#include "peinit/record/json.h"

namespace peinit::verify {

namespace {




struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey PkeyFromPem(const std::string& pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    if (!bio) return nullptr;
    return Pkey(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
}

std::string HexOf(const uint8_t* p, std::size_t n) {
    return HexEncode(reinterpret_cast<const std::byte*>(p), n);
}
std::string HexOf(const Bytes& b) { return HexOf(b.data(), b.size()); }

tpm::PcrValue Sha256(const uint8_t* p, std::size_t n) {
    Sha256Digest d = Sha256Of({reinterpret_cast<const std::byte*>(p), n});
    tpm::PcrValue v;
    std::memcpy(v.data(), d.data(), 32);
    return v;
}

bool EcdsaVerify(EVP_PKEY* key, const Bytes& message, const TPMS_SIGNATURE_ECDSA& sig) {
    std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> s(ECDSA_SIG_new(), ECDSA_SIG_free);
    BIGNUM* r = BN_bin2bn(sig.signatureR.buffer, sig.signatureR.size, nullptr);
    BIGNUM* ss = BN_bin2bn(sig.signatureS.buffer, sig.signatureS.size, nullptr);
    if (!s || r == nullptr || ss == nullptr || ECDSA_SIG_set0(s.get(), r, ss) != 1) {
        BN_free(r);
        BN_free(ss);
        return false;
    }
    unsigned char* der = nullptr;
    int der_len = i2d_ECDSA_SIG(s.get(), &der);
    if (der_len <= 0) return false;
    std::unique_ptr<unsigned char, void (*)(unsigned char*)> der_owner(
        der, [](unsigned char* p) { OPENSSL_free(p); });
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
           EVP_DigestVerify(ctx.get(), der, static_cast<std::size_t>(der_len), message.data(),
                            message.size()) == 1;
}

Result<Bytes> HexField(const JsonValue& v, std::string_view key, std::string_view where) {
    auto s = v.StringAt(key);
    if (!s) return s.error().Context(std::string(where));
    auto b = DecodeHex(*s);
    if (!b) return Err(std::string(where) + std::string(key) + ": not hex");
    return *b;
}

class Verifier {
  public:
    Verifier(const Bundle& b, const Reference& ref, Report& report)
        : b_(b), ref_(ref), report_(report) {}

    void Run(const std::optional<Bytes>& challenge) {
        // tpm2-tss's unmarshalling through the dlopen table (peinit/tpm/tss2.h), as everywhere
        // else: the package needs no TPM library, only the machine that runs the verifier.
        auto tss = tpm::LoadTss2();
        if (!tss) {
            Add("cannot read the quote's TPM structures: " + tss.error().message() +
                " (install libtss2-mu0, libtss2-esys-3.0.2-0, libtss2-tctildr0 and libtss2-rc0)");
            Log();
            return;
        }
        tss_ = *tss;
        bool key_ok = AttestationKey();
        TPMS_ATTEST attest{};
        bool attest_ok = Attest(attest);
        if (key_ok) Signature();
        if (attest_ok) {
            Nonce(attest, challenge);
            PcrDigest(attest);
        }
        Log();
    }

  private:
    const tpm::Tss2* tss_ = nullptr;
    void Add(std::string message, int record = 0) {
        report_.deviations.push_back({record, std::move(message)});
    }

    // The AK: a restricted P-256 signing key whose name is the bundle's and the reference's.
    bool AttestationKey() {
        TPMT_PUBLIC pub{};
        size_t off = 0;
        if (tss_->Tss2_MU_TPMT_PUBLIC_Unmarshal(b_.ak_public.data(), b_.ak_public.size(), &off, &pub) !=
                TSS2_RC_SUCCESS ||
            off != b_.ak_public.size()) {
            Add("ak.public is not a TPMT_PUBLIC structure");
            return false;
        }
        const TPMA_OBJECT need = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                 TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_RESTRICTED |
                                 TPMA_OBJECT_SIGN_ENCRYPT;
        const TPMS_ECC_PARMS& ecc = pub.parameters.eccDetail;
        if (pub.type != TPM2_ALG_ECC || pub.nameAlg != TPM2_ALG_SHA256 ||
            ecc.curveID != TPM2_ECC_NIST_P256 || ecc.scheme.scheme != TPM2_ALG_ECDSA ||
            (pub.objectAttributes & need) != need || (pub.objectAttributes & TPMA_OBJECT_DECRYPT) ||
            pub.unique.ecc.x.size > 32 || pub.unique.ecc.y.size > 32) {
            Add("the AK is not a restricted, TPM-resident ECDSA P-256 signing key (template "
                "of peinitctl attest): its quotes prove nothing");
            return false;
        }
        Bytes name{0x00, 0x0b};
        tpm::PcrValue h = Sha256(b_.ak_public.data(), b_.ak_public.size());
        name.insert(name.end(), h.begin(), h.end());
        if (name != b_.ak_name) {
            Add("ak.name " + HexOf(b_.ak_name) + " is not the name of ak.public (" + HexOf(name) +
                ")");
        }
        tpm::AttestationKey ak;
        std::memcpy(ak.x.data() + 32 - pub.unique.ecc.x.size, pub.unique.ecc.x.buffer,
                    pub.unique.ecc.x.size);
        std::memcpy(ak.y.data() + 32 - pub.unique.ecc.y.size, pub.unique.ecc.y.buffer,
                    pub.unique.ecc.y.size);
        key_ = PkeyFromPem(ak.Pem());
        if (!key_) {
            Add("the AK's public point is not on P-256");
            return false;
        }
        Pkey bundle_pem = PkeyFromPem(b_.ak_pem);
        if (!bundle_pem || EVP_PKEY_eq(bundle_pem.get(), key_.get()) != 1) {
            Add("ak.public_pem is not the key of ak.public");
        }
        std::string name_hex = HexOf(name);
        if (name_hex != ref_.ak_name) {
            Add("the quote is signed by AK " + name_hex + ", not the enrolled AK " + ref_.ak_name +
                " (" + ref_.path + "): a quote from a different TPM");
        } else {
            Pkey enrolled = PkeyFromPem(ref_.ak_public_pem);
            if (!enrolled || EVP_PKEY_eq(enrolled.get(), key_.get()) != 1) {
                Add("the enrolled attestation_key.public_pem (" + ref_.path +
                    ") is not the key its name belongs to");
            }
        }
        return true;
    }

    bool Attest(TPMS_ATTEST& attest) {
        size_t off = 0;
        if (tss_->Tss2_MU_TPMS_ATTEST_Unmarshal(b_.message.data(), b_.message.size(), &off, &attest) !=
                TSS2_RC_SUCCESS ||
            off != b_.message.size()) {
            Add("quote.message is not a TPMS_ATTEST structure");
            return false;
        }
        if (attest.magic != TPM2_GENERATED_VALUE) {
            Add("quote.message was not generated by a TPM (magic is not TPM_GENERATED_VALUE)");
            return false;
        }
        if (attest.type != TPM2_ST_ATTEST_QUOTE) {
            Add("quote.message is not a quote (attestation type " + std::to_string(attest.type) +
                ")");
            return false;
        }
        report_.notes.push_back("quote: TPM clock reset count " +
                                std::to_string(attest.clockInfo.resetCount) + ", restart count " +
                                std::to_string(attest.clockInfo.restartCount));
        return true;
    }

    void Signature() {
        TPMT_SIGNATURE sig{};
        size_t off = 0;
        if (tss_->Tss2_MU_TPMT_SIGNATURE_Unmarshal(b_.signature.data(), b_.signature.size(), &off,
                                             &sig) != TSS2_RC_SUCCESS ||
            off != b_.signature.size()) {
            Add("quote.signature is not a TPMT_SIGNATURE structure");
            return;
        }
        if (sig.sigAlg != TPM2_ALG_ECDSA || sig.signature.ecdsa.hash != TPM2_ALG_SHA256) {
            Add("quote.signature is not ECDSA with SHA-256");
            return;
        }
        if (!EcdsaVerify(key_.get(), b_.message, sig.signature.ecdsa)) {
            Add("the quote's signature does not verify with the AK: the quote or the signature "
                "was altered");
        }
    }

    void Nonce(const TPMS_ATTEST& attest, const std::optional<Bytes>& challenge) {
        Bytes extra(attest.extraData.buffer, attest.extraData.buffer + attest.extraData.size);
        if (challenge) {
            if (extra != *challenge) {
                Add("the quote's nonce " + HexOf(extra) + " is not the challenge " +
                    HexOf(*challenge) + ": a quote made for another request (replayed)");
            }
        } else {
            report_.notes.push_back("no --nonce given: the quote's freshness was not checked");
        }
        if (extra != b_.nonce) {
            Add("the bundle's nonce " + HexOf(b_.nonce) + " is not the quote's " + HexOf(extra));
        }
    }

    void PcrDigest(const TPMS_ATTEST& attest) {
        const TPMS_QUOTE_INFO& q = attest.attested.quote;
        std::set<int> quoted;
        for (uint32_t i = 0; i < q.pcrSelect.count && i < TPM2_NUM_PCR_BANKS; ++i) {
            const TPMS_PCR_SELECTION& s = q.pcrSelect.pcrSelections[i];
            for (int p = 0; p < s.sizeofSelect * 8 && p / 8 < TPM2_PCR_SELECT_MAX; ++p) {
                if (!(s.pcrSelect[p / 8] & (1u << (p % 8)))) continue;
                if (s.hash != TPM2_ALG_SHA256) {
                    Add("the quote covers a bank other than sha256");
                    return;
                }
                quoted.insert(p);
            }
        }
        std::set<int> bundled;
        Bytes concat;
        for (const auto& [p, v] : b_.pcrs) {
            bundled.insert(p);
            concat.insert(concat.end(), v.begin(), v.end());
        }
        if (quoted != bundled) {
            Add("the quote covers PCRs " + List(quoted) + ", the bundle lists " + List(bundled));
            return;
        }
        tpm::PcrValue digest = Sha256(concat.data(), concat.size());
        if (q.pcrDigest.size != 32 || std::memcmp(q.pcrDigest.buffer, digest.data(), 32) != 0) {
            Add("the bundle's PCR values are not the ones quoted (PCR digest " +
                HexOf(q.pcrDigest.buffer, q.pcrDigest.size) + ", the values give " +
                HexOf(digest.data(), 32) + ")");
        }
    }

    void Log() {
        tpm::EventLog log = tpm::ParseEventLog(b_.log);
        for (const auto& p : log.problems) Add(p.message, p.record);
        for (const auto& p : tpm::CheckRecordDigests(log)) Add(p.message, p.record);
        auto replayed = tpm::ReplaySha256(log);
        std::set<int> quoted;
        for (const auto& [p, value] : b_.pcrs) {
            quoted.insert(p);
            tpm::PcrValue want{};
            if (auto it = replayed.find(p); it != replayed.end()) want = it->second;
            if (want != value) {
                Add("PCR " + std::to_string(p) + " is " + HexOf(value.data(), 32) +
                    " but the log replays to " + HexOf(want.data(), 32) +
                    ": the log is not the one measured (a record removed, added, reordered or "
                    "its digest changed)");
            }
        }
        std::set<int> unquoted;
        for (const auto& r : log.records) {
            if (r.content_type == tpm::kPeinitContentType && quoted.count(r.pcr) == 0 &&
                unquoted.insert(r.pcr).second) {
                Add("PCR " + std::to_string(r.pcr) +
                        " is not in the quote: peinit's records on it are not attested",
                    r.number);
            }
        }
        for (const auto& d : CheckPosture(log, ref_, report_.posture)) {
            report_.deviations.push_back(d);
        }
    }

    static std::string List(const std::set<int>& s) {
        std::string out;
        for (int p : s) out += (out.empty() ? "" : ",") + std::to_string(p);
        return out.empty() ? "none" : out;
    }

    const Bundle& b_;
    const Reference& ref_;
    Report& report_;
    Pkey key_;
};

}  // namespace

std::optional<Bytes> DecodeHex(std::string hex) {
    if (hex.size() % 2 != 0) return std::nullopt;
    for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    Bytes out(hex.size() / 2);
    if (!HexDecode(hex, reinterpret_cast<std::byte*>(out.data()), out.size())) return std::nullopt;
    return out;
}

std::optional<std::string> DecodeBase64(std::string_view text) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    if (text.size() % 4 != 0) return std::nullopt;
    std::string out;
    for (std::size_t i = 0; i < text.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = text[i + k];
            if (c == '=' && i + 4 == text.size() && k >= 2) {
                v[k] = 0;
                ++pad;
                continue;
            }
            if (pad > 0) return std::nullopt;
            v[k] = value(c);
            if (v[k] < 0) return std::nullopt;
        }
        uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
        out.push_back(static_cast<char>(n >> 16));
        if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
        if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
    }
    return out;
}

Result<Bundle> ParseBundle(const std::string& text) {
    auto doc = JsonDocument::Parse(text);
    if (!doc) return doc.error();
    JsonValue root = doc->root();
    if (!root.IsObject()) return Err("not a JSON object");
    auto kind = root.StringAt("kind");
    if (!kind || *kind != "peinit-attestation") {
        return Err("kind: not \"peinit-attestation\" (not a peinitctl attest bundle)");
    }
    auto version = PEINIT_TRY(root.IntAt("version"));
    if (version != 1) return Err("version: " + std::to_string(version) + " is not 1");
    Bundle b;
    b.measured = PEINIT_TRY(root.BoolAt("measured"));
    b.nonce = PEINIT_TRY(HexField(root, "nonce", ""));
    if (!b.measured) {
        b.reason = PEINIT_TRY(root.StringAt("reason"));
        return b;
    }
    JsonValue ak = root.Get("ak");
    if (!ak.IsObject()) return Err("ak: must be an object");
    auto pem = ak.StringAt("public_pem");
    if (!pem) return pem.error().Context("ak.");
    b.ak_pem = *pem;
    b.ak_name = PEINIT_TRY(HexField(ak, "name", "ak."));
    b.ak_public = PEINIT_TRY(HexField(ak, "public", "ak."));
    auto bank = PEINIT_TRY(root.StringAt("pcr_bank"));
    if (bank != "sha256") return Err("pcr_bank: \"" + bank + "\" is not sha256");
    JsonValue pcrs = root.Get("pcrs");
    if (!pcrs.IsObject()) return Err("pcrs: must be an object");
    for (const auto& key : pcrs.Keys()) {
        if (key.empty() || key.size() > 2 ||
            key.find_first_not_of("0123456789") != std::string::npos || std::stoi(key) > 23) {
            return Err("pcrs: \"" + key + "\" is not a PCR (0-23)");
        }
        auto value = PEINIT_TRY(HexField(pcrs, key, "pcrs."));
        if (value.size() != 32) return Err("pcrs." + key + ": not a SHA-256 value");
        tpm::PcrValue v;
        std::copy(value.begin(), value.end(), v.begin());
        b.pcrs.emplace_back(std::stoi(key), v);
    }
    std::sort(b.pcrs.begin(), b.pcrs.end());
    JsonValue quote = root.Get("quote");
    if (!quote.IsObject()) return Err("quote: must be an object");
    b.message = PEINIT_TRY(HexField(quote, "message", "quote."));
    b.signature = PEINIT_TRY(HexField(quote, "signature", "quote."));
    auto log = PEINIT_TRY(root.StringAt("log"));
    auto raw = DecodeBase64(log);
    if (!raw) return Err("log: not base64");
    b.log = std::move(*raw);
    return b;
}

Report Verify(const Bundle& bundle, const Reference& ref, const std::optional<Bytes>& challenge) {
    Report report;
    if (!bundle.measured) {
        report.measured = false;
        report.deviations.push_back({0, "not measured: " + bundle.reason});
        return report;
    }
    Verifier(bundle, ref, report).Run(challenge);
    return report;
}

std::string Report::Summary() const {
    if (!measured) return "posture NOT verified: not measured";
    if (!deviations.empty()) {
        return "posture NOT verified: " + std::to_string(deviations.size()) +
               (deviations.size() == 1 ? " deviation" : " deviations");
    }
    std::string signers;
    for (const auto& s : posture.signers)
        signers += (signers.empty() ? "" : ", ") + s.substr(0, 16);
    std::string lock = posture.locked ? "locked by " + posture.mechanism : "not locked";
    return "posture verified: " + lock + ", " + std::to_string(posture.modules) +
           (posture.modules == 1 ? " module" : " modules") +
           (signers.empty() ? "" : ", signed by " + signers);
}

}  // namespace peinit::verify
