#pragma once

// Attestation on the machine (peinitctl attest): the attestation key (AK) and a quote of PCRs
// with a verifier's nonce, through tpm2-tss reached only by the dlopen table (tss2.h), so that
// peinitctl still needs only glibc.
//
// The AK is a primary key in the endorsement hierarchy made from a fixed template
// (AttestationKeyTemplate below, ATTESTATION.md "The attestation key"): a TPM derives a
// primary key from its hierarchy's seed and the template only, so the same TPM gives the same
// key every time, and no NV index or persistent handle is needed. Another TPM (other seed) gives
// another key; the verifier compares the AK with the one enrolled in its reference.

#include <tss2/tss2_tpm2_types.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/tpm/event_log_read.h"
#include "peinit/tpm/tss2.h"

namespace peinit::tpm {

using Bytes = std::vector<uint8_t>;

// The AK template: ECC NIST P-256, ECDSA with SHA-256, nameAlg SHA-256, attributes fixedTPM |
// fixedParent | sensitiveDataOrigin | userWithAuth | noDA | restricted | sign (0x00050472), no
// symmetric algorithm, no KDF, empty authPolicy and unique. The same template as
//   tpm2_createprimary -C e -g sha256 -G ecc256:ecdsa-sha256:null
//     -a 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|restricted|sign|noda'
// with an empty auth value, so tpm2-tools recreates the identical key (the attestation test
// checks the names agree).
TPM2B_PUBLIC AttestationKeyTemplate();

struct AttestationKey {
    Bytes public_area;  // TPMT_PUBLIC, marshaled (what the name is the hash of)
    Bytes name;         // the TPM's name: 0x000b || SHA-256(public_area)
    std::array<uint8_t, 32> x{}, y{};
    std::string Pem() const;  // SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----"
};

struct QuoteResult {
    AttestationKey ak;
    Bytes message;                               // TPMS_ATTEST, marshaled (tpm2_quote -m)
    Bytes signature;                             // TPMT_SIGNATURE, marshaled (tpm2_quote -s)
    std::vector<std::pair<int, PcrValue>> pcrs;  // the quoted sha256 PCRs, ascending
};

// Creates the AK (CreatePrimary under the endorsement hierarchy, empty auth), reads it and
// flushes it. An error names the step and tpm2-tss's decoding of the response code.
Result<AttestationKey> CreateAttestationKey(EsysContext& tpm);

// Quotes the sha256 bank's `pcrs` with `nonce` as qualifying data (at most 64 bytes) and reads
// their values; PCRs read before and after the quote must agree (no extension in between), or
// it is taken again.
Result<QuoteResult> TakeQuote(EsysContext& tpm, const std::vector<int>& pcrs, const Bytes& nonce);

// The PCR values in the layout `tpm2_quote -o` writes and `tpm2_checkquote -f` reads (tpm2-tools
// 5's default "serialized" format: the TPML_PCR_SELECTION structure as in memory, a 32-bit count
// and that many TPML_DIGEST structures, host byte order).
Bytes CheckquotePcrsFile(const std::vector<std::pair<int, PcrValue>>& pcrs);

// The attestation bundle (ATTESTATION.md "The bundle"), JSON.
std::string BundleJson(const QuoteResult& quote, const Bytes& nonce, const std::string& log,
                       const std::string& log_path);
// A bundle that says the boot was not measured, with the reason.
std::string NotMeasuredBundleJson(const Bytes& nonce, const std::string& reason);

std::string Base64Encode(const uint8_t* data, std::size_t size);
std::string Hex(const Bytes& data);

}  // namespace peinit::tpm
