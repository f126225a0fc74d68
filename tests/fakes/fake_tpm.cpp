#include "tests/fakes/fake_tpm.h"

namespace peinit {

Result<void> FakeTpm::Extend(int pcr, const tpm::Digest& sha256) {
    std::lock_guard lock(mu_);
    if (!present_) return Err("TPM fake: no TPM");
    if (pcr < 0 || pcr > 23) return Err("TPM fake: no PCR " + std::to_string(pcr));
    const int call = calls_++;
    if (fail_from_ && call >= *fail_from_) {
        ++failed_calls_;
        return Err("TPM fake: PCR_Extend of PCR " + std::to_string(pcr) +
                   ": the TPM stopped answering (scripted)");
    }
    pcrs_[pcr] = tpm::ExtendDigest(pcrs_[pcr], sha256);
    extends_.emplace_back(pcr, sha256);
    return Ok();
}

Result<tpm::Digest> FakeTpm::ReadPcr(int pcr) {
    std::lock_guard lock(mu_);
    if (!present_) return Err("TPM fake: no TPM");
    if (pcr < 0 || pcr > 23) return Err("TPM fake: no PCR " + std::to_string(pcr));
    return pcrs_[pcr];
}

void FakeTpm::FailFromExtend(int n) {
    std::lock_guard lock(mu_);
    fail_from_ = n;
}

std::vector<std::pair<int, tpm::Digest>> FakeTpm::extends() const {
    std::lock_guard lock(mu_);
    return extends_;
}

int FakeTpm::failed_calls() const {
    std::lock_guard lock(mu_);
    return failed_calls_;
}

}  // namespace peinit
