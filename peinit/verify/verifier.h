#pragma once

// peinit-verify's checks of an attestation bundle (peinitctl attest) against a reference:
//   (a) the quote's signature, by the AK in the bundle, and that AK is the enrolled one;
//   (b) the quote's nonce (extraData) is the verifier's challenge;
//   (c) the quote's PCR digest is the digest of the bundle's PCR values;
//   (d) the log, replayed from zeros, gives those PCR values;
//   (e) every string record's digest is the SHA-256 of its content;
//   (f) the log against the reference policy (posture.h).
// Every deviation is collected; nothing stops at the first.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/tpm/attest.h"
#include "peinit/verify/posture.h"
#include "peinit/verify/reference.h"

namespace peinit::verify {

using tpm::Bytes;

struct Bundle {
    bool measured = true;
    std::string reason;  // why not measured
    Bytes nonce;
    std::string ak_pem;
    Bytes ak_name;
    Bytes ak_public;                                  // TPMT_PUBLIC, marshaled
    std::vector<std::pair<int, tpm::PcrValue>> pcrs;  // ascending
    Bytes message;                                    // TPMS_ATTEST, marshaled
    Bytes signature;                                  // TPMT_SIGNATURE, marshaled
    std::string log;                                  // the raw event log
};

// Parses a bundle. The error names the field ("quote.message: not hex"); a bundle that says
// "measured": false parses with only its reason and nonce.
Result<Bundle> ParseBundle(const std::string& text);

struct Report {
    bool measured = true;
    std::vector<std::string> notes;  // facts that are not deviations (no --nonce given, ...)
    std::vector<Deviation> deviations;
    Posture posture;
    std::string Summary() const;  // "posture verified: ..." / "posture NOT verified: ..."
};

// `challenge`: the nonce the verifier issued (--nonce); without it the quote's nonce is only
// compared with the bundle's, and a note says freshness was not checked.
Report Verify(const Bundle& bundle, const Reference& ref, const std::optional<Bytes>& challenge);

// Lowercase or uppercase hex to bytes; nullopt when not an even number of hex digits.
std::optional<Bytes> DecodeHex(std::string hex);
std::optional<std::string> DecodeBase64(std::string_view text);

}  // namespace peinit::verify
