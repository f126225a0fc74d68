#pragma once

// Tpm: the seam around the TPM operations measured boot needs. PID 1 holds a SystemTpm
// (tpm2-tss's ESYS over the kernel's resource manager, loaded with dlopen only when a TPM is
// there, tss2.h); tests use FakeTpm (tests/fakes/fake_tpm.h), which extends in software.
//
// Only the SHA-256 bank is used: every event's digest is a SHA-256, and the PCR read back is the
// SHA-256 bank's value. Implementations must be safe to call from several threads at once (the
// module loader's workers measure the modules they load), though Measurement (measure.h)
// serialises its own calls.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "peinit/core/result.h"

namespace peinit::tpm {

using Digest = std::array<uint8_t, 32>;

Digest Sha256(std::string_view bytes);
Digest Sha256(std::span<const std::byte> bytes);
// Lowercase hex, 64 characters.
std::string Hex(const Digest& digest);
// What a TPM does on extend: SHA-256(pcr || digest).
Digest ExtendDigest(const Digest& pcr, const Digest& digest);

class Tpm {
  public:
    virtual ~Tpm() = default;

    // Whether there is a TPM to talk to. Answered without loading the TPM software stack (a
    // boot without a TPM maps none of it).
    virtual bool Present() = 0;
    // PCR_Extend of the SHA-256 bank of `pcr` with `sha256`. The error names the TPM and says
    // what failed.
    virtual Result<void> Extend(int pcr, const Digest& sha256) = 0;
    // The SHA-256 bank's value of `pcr`.
    virtual Result<Digest> ReadPcr(int pcr) = 0;
    // What the TPM is, for logs and the record: "device:/dev/tpmrm0", "swtpm:...", "fake".
    virtual std::string Name() const = 0;
};

// The system's TPM through tpm2-tss (tss2.h), at `tcti` ("device:/dev/tpmrm0" unless
// $PEINIT_TPM_TCTI says otherwise). Present() is true when a "device:" TCTI's node exists, and
// for any other TCTI (a simulator named explicitly). The ESYS context is opened on the first
// Extend or ReadPcr and kept until Close() or destruction.
class SystemTpm : public Tpm {
  public:
    explicit SystemTpm(std::string tcti);
    ~SystemTpm() override;
    bool Present() override;
    Result<void> Extend(int pcr, const Digest& sha256) override;
    Result<Digest> ReadPcr(int pcr) override;
    std::string Name() const override { return tcti_; }
    // Finalises the ESYS context (closes the device), e.g. before PID 1 executes the real init.
    void Close();

  private:
    struct State;
    std::string tcti_;
    std::unique_ptr<State> state_;
};

}  // namespace peinit::tpm
