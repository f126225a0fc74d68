#pragma once

// FakeTpm: a TPM in memory for tests. It extends the SHA-256 bank in software exactly as a TPM
// does (new = SHA-256(old || digest), PCRs start at zero), records every extend in order, and
// can be told to be absent or to fail from the Nth extend on (a TPM that dies mid-boot).
// Thread-safe.

#include <array>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "peinit/tpm/tpm.h"

namespace peinit {

class FakeTpm : public tpm::Tpm {
  public:
    explicit FakeTpm(bool present = true) : present_(present) {}

    bool Present() override { return present_; }
    Result<void> Extend(int pcr, const tpm::Digest& sha256) override;
    Result<tpm::Digest> ReadPcr(int pcr) override;
    std::string Name() const override { return "fake"; }

    // Extends from the `n`th (0-based) on fail with "TPM fake: ... failed"; nothing is extended.
    void FailFromExtend(int n);
    // Every extend made, in order.
    std::vector<std::pair<int, tpm::Digest>> extends() const;
    int failed_calls() const;

  private:
    bool present_;
    mutable std::mutex mu_;
    std::array<tpm::Digest, 24> pcrs_{};
    std::vector<std::pair<int, tpm::Digest>> extends_;
    std::optional<int> fail_from_;
    int calls_ = 0;
    int failed_calls_ = 0;
};

}  // namespace peinit
