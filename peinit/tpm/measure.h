#pragma once

// Measurement: PID 1's measured boot. Each fact is extended into the TPM and appended to
// the user-space event log (event_log.h) before it takes effect; one mutex covers the extend and
// the append, so the log's order is the extend order even when the module loader's workers
// measure modules at once, and a replay of the log gives the PCR.
//
// A TPM or log error never stops the boot: it is logged once, loudly, recorded (the record's
// state "failed" with the error) and nothing more is measured, so the log and the PCR stay
// consistent up to that point; every later Measure* returns false at once.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "peinit/record/measurement.h"
#include "peinit/tpm/event_log.h"
#include "peinit/tpm/tpm.h"

namespace peinit::tpm {

// The PCR peinit measures into unless the hive says otherwise (ATTESTATION.md, "Which PCR and
// why"), and the one systemd-pcrphase measures boot phases into.
inline constexpr int kDefaultPcr = 13;
inline constexpr int kPhasePcr = 11;

struct MeasureConfig {
    int pcr = kDefaultPcr;
    // Also measure systemd-pcrphase's "enter-initrd" / "leave-initrd" words into PCR 11, in
    // systemd's own record format (off by default: PCR 11 is what systemd's signed policies
    // predict, and a UKI's systemd already measures them).
    bool phases = false;
    std::string log_path = kUserspaceLogPath;
};

class Measurement {
  public:
    Measurement(std::shared_ptr<Tpm> tpm, MeasureConfig config);

    // Extends SHA-256(S) of `event` into the configured PCR and logs it. False when nothing was
    // measured (stopped earlier, or this extend or append failed: then stopped from now on).
    bool Measure(const MeasurementEvent& event);
    // A module about to be handed to the kernel; also remembered for the module set. Thread-safe.
    bool MeasureModule(const std::string& name, const std::string& sha256,
                       const std::string& package, const std::string& signer);
    // The module set so far: count and SHA-256 over the sorted lines "<name> <sha256>\n".
    bool MeasureModuleSet();
    // systemd-pcrphase's word into PCR 11 (only when config.phases; true otherwise).
    bool MeasurePhase(const std::string& word);

    // Not stopped by an error.
    bool ok() const;
    int pcr() const { return config_.pcr; }
    const MeasureConfig& config() const { return config_; }
    Tpm& tpm() { return *tpm_; }
    // What was measured so far (state "measured" or "failed").
    MeasurementRecord Record() const;

    // The module set's digest of `lines` ("<name> <sha256>" each, any order).
    static std::string ModuleSetDigest(std::vector<std::string> lines);

  private:
    // Locked: extend, append, remember.
    bool Extend(int pcr, const std::string& content_type, const std::string& event,
                const std::string& s, const std::string& record);
    void Fail(const std::string& error);

    std::shared_ptr<Tpm> tpm_;
    MeasureConfig config_;
    mutable std::mutex mu_;
    bool stopped_ = false;
    MeasurementRecord record_;
    std::vector<std::string> module_lines_;
};

// The record of a boot that measured nothing ("not-measured", `reason`).
MeasurementRecord NotMeasuredRecord(const std::string& reason);

}  // namespace peinit::tpm
