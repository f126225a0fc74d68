#include "peinit/tpm/measure.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace peinit::tpm {

Measurement::Measurement(std::shared_ptr<Tpm> tpm, MeasureConfig config)
    : tpm_(std::move(tpm)), config_(std::move(config)) {
    record_.state = MeasurementRecord::kMeasured;
    record_.tpm = tpm_->Name();
    record_.pcr = config_.pcr;
    record_.log = config_.log_path;
}

bool Measurement::ok() const {
    std::lock_guard lock(mu_);
    return !stopped_;
}

MeasurementRecord Measurement::Record() const {
    std::lock_guard lock(mu_);
    return record_;
}

void Measurement::Fail(const std::string& error) {
    stopped_ = true;
    record_.state = MeasurementRecord::kFailed;
    record_.error = error;
    spdlog::critical(
        "measure: {}: measured boot stops here, the boot goes on unmeasured (the log and PCR {} "
        "end before this event)",
        error, config_.pcr);
}

bool Measurement::Extend(int pcr, const std::string& content_type, const std::string& event,
                         const std::string& s, const std::string& record) {
    if (stopped_) return false;
    // Locked for the extend and the append (flock), marked as being written (sticky bit).
    auto log = UserspaceLog::Open(config_.log_path);
    if (!log) {
        Fail(log.error().message());
        return false;
    }
    if (log->tainted()) {
        spdlog::warn("measure: {} was left half-written by an earlier writer (sticky bit set)",
                     config_.log_path);
    }
    const Digest digest = Sha256(s);
    if (auto extended = tpm_->Extend(pcr, digest); !extended) {
        (void)log->Finish();
        Fail(extended.error().message());
        return false;
    }
    if (auto appended = log->Append(record); !appended) {
        Fail(appended.error().message() + " (PCR " + std::to_string(pcr) +
             " was extended with this event: the log no longer replays to it)");
        return false;
    }
    if (auto finished = log->Finish(); !finished) {
        spdlog::warn("measure: {}", finished.error().message());
    }
    record_.events.push_back({pcr, content_type, event, s, Hex(digest)});
    spdlog::info("measure: {} pcr={} sha256={}", event == "phase" ? s : event, pcr,
                 Hex(digest).substr(0, 16));
    return true;
}

bool Measurement::Measure(const MeasurementEvent& event) {
    const std::string s = EventString(event);
    const std::string record = PeinitLogRecord(config_.pcr, event.event, s);
    std::lock_guard lock(mu_);
    return Extend(config_.pcr, "peinit", event.event, s, record);
}

bool Measurement::MeasureModule(const std::string& name, const std::string& sha256,
                                const std::string& package, const std::string& signer) {
    const MeasurementEvent event = MakeModuleEvent(name, sha256, package, signer);
    const std::string s = EventString(event);
    const std::string record = PeinitLogRecord(config_.pcr, event.event, s);
    std::lock_guard lock(mu_);
    // Remembered even when not measured: the set's digest is what was handed to the kernel.
    module_lines_.push_back(name + " " + sha256);
    return Extend(config_.pcr, "peinit", event.event, s, record);
}

std::string Measurement::ModuleSetDigest(std::vector<std::string> lines) {
    std::sort(lines.begin(), lines.end());
    std::string text;
    for (const auto& line : lines) text += line + "\n";
    return Hex(Sha256(text));
}

bool Measurement::MeasureModuleSet() {
    std::lock_guard lock(mu_);
    const auto count = static_cast<int64_t>(module_lines_.size());
    const std::string digest = ModuleSetDigest(module_lines_);
    const MeasurementEvent event = MakeModuleSetEvent(count, digest);
    const std::string s = EventString(event);
    if (!Extend(config_.pcr, "peinit", event.event, s,
                PeinitLogRecord(config_.pcr, event.event, s))) {
        return false;
    }
    record_.module_count = count;
    record_.module_set_sha256 = digest;
    return true;
}

bool Measurement::MeasurePhase(const std::string& word) {
    if (!config_.phases) return true;
    std::lock_guard lock(mu_);
    return Extend(kPhasePcr, "systemd", "phase", word, PhaseLogRecord(kPhasePcr, word));
}

MeasurementRecord NotMeasuredRecord(const std::string& reason) {
    MeasurementRecord r;
    r.state = MeasurementRecord::kNotMeasured;
    r.reason = reason;
    return r;
}

}  // namespace peinit::tpm
