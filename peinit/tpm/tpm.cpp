#include "peinit/tpm/tpm.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <algorithm>
#include <mutex>
#include <optional>

#include "peinit/tpm/tss2.h"

namespace peinit::tpm {

namespace {

Digest Sha256Of(const void* data, std::size_t size) {
    Digest out{};
    unsigned int len = 0;
    // EVP_Digest cannot fail for SHA-256 on memory short of an allocation failure; the zero
    // digest it would leave is never a valid measurement of anything.
    EVP_Digest(data, size, out.data(), &len, EVP_sha256(), nullptr);
    return out;
}

}  // namespace

Digest Sha256(std::string_view bytes) { return Sha256Of(bytes.data(), bytes.size()); }

Digest Sha256(std::span<const std::byte> bytes) { return Sha256Of(bytes.data(), bytes.size()); }

std::string Hex(const Digest& digest) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(64);
    for (uint8_t b : digest) {
        out += kHex[b >> 4];
        out += kHex[b & 0xf];
    }
    return out;
}

Digest ExtendDigest(const Digest& pcr, const Digest& digest) {
    uint8_t buf[64];
    std::copy(pcr.begin(), pcr.end(), buf);
    std::copy(digest.begin(), digest.end(), buf + 32);
    return Sha256Of(buf, sizeof buf);
}

struct SystemTpm::State {
    std::mutex mu;
    std::optional<EsysContext> esys;
};

SystemTpm::SystemTpm(std::string tcti) : tcti_(std::move(tcti)), state_(std::make_unique<State>()) {}

SystemTpm::~SystemTpm() = default;

bool SystemTpm::Present() {
    constexpr std::string_view kDevice = "device:";
    if (!std::string_view(tcti_).starts_with(kDevice)) return true;
    struct stat st {};
    return ::stat(tcti_.c_str() + kDevice.size(), &st) == 0;
}

void SystemTpm::Close() {
    std::lock_guard lock(state_->mu);
    state_->esys.reset();
}

namespace {

Result<EsysContext*> Opened(std::optional<EsysContext>& esys, const std::string& tcti) {
    if (!esys) {
        auto opened = EsysContext::Open(tcti);
        if (!opened) return opened.error();
        esys.emplace(std::move(*opened));
    }
    return &*esys;
}

bool ValidPcr(int pcr) { return pcr >= 0 && pcr <= 23; }

}  // namespace

Result<void> SystemTpm::Extend(int pcr, const Digest& sha256) {
    if (!ValidPcr(pcr)) return Err("TPM " + tcti_ + ": no PCR " + std::to_string(pcr));
    std::lock_guard lock(state_->mu);
    auto esys = Opened(state_->esys, tcti_);
    if (!esys) return esys.error();
    const Tss2& tss = (*esys)->tss();
    TPML_DIGEST_VALUES values{};
    values.count = 1;
    values.digests[0].hashAlg = TPM2_ALG_SHA256;
    std::copy(sha256.begin(), sha256.end(), values.digests[0].digest.sha256);
    TSS2_RC rc = tss.Esys_PCR_Extend((*esys)->get(), ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD,
                                     ESYS_TR_NONE, ESYS_TR_NONE, &values);
    if (rc != TSS2_RC_SUCCESS) {
        return Err(TssError(tss, "TPM " + tcti_ + ": PCR_Extend of PCR " + std::to_string(pcr), rc));
    }
    return Ok();
}

Result<Digest> SystemTpm::ReadPcr(int pcr) {
    if (!ValidPcr(pcr)) return Err("TPM " + tcti_ + ": no PCR " + std::to_string(pcr));
    std::lock_guard lock(state_->mu);
    auto esys = Opened(state_->esys, tcti_);
    if (!esys) return esys.error();
    const Tss2& tss = (*esys)->tss();
    TPML_PCR_SELECTION selection{};
    selection.count = 1;
    selection.pcrSelections[0].hash = TPM2_ALG_SHA256;
    selection.pcrSelections[0].sizeofSelect = 3;
    selection.pcrSelections[0].pcrSelect[pcr / 8] = static_cast<BYTE>(1u << (pcr % 8));
    TPML_DIGEST* values = nullptr;
    TSS2_RC rc = tss.Esys_PCR_Read((*esys)->get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                   &selection, nullptr, nullptr, &values);
    const std::string what = "TPM " + tcti_ + ": PCR_Read of PCR " + std::to_string(pcr);
    if (rc != TSS2_RC_SUCCESS) return Err(TssError(tss, what, rc));
    Digest out{};
    bool ok = values != nullptr && values->count == 1 && values->digests[0].size == out.size();
    if (ok) std::copy_n(values->digests[0].buffer, out.size(), out.begin());
    tss.Esys_Free(values);
    if (!ok) return Err(what + ": the TPM has no SHA-256 bank for it");
    return out;
}

}  // namespace peinit::tpm
