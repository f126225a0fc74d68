#include "stages/measure/measure.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "peinit/record/image.h"
#include "peinit/modload/session.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/kernel_release.h"
#include "peinit/sys/record.h"
#include "peinit/tpm/measure.h"

namespace peinit {

std::vector<std::string> CmdlineTightening(const EffectivePolicy& policy) {
    std::vector<std::string> out;
    if (policy.lock_after_boot.source == PolicySource::kCmdline) out.push_back("peinit.lock=1");
    if (policy.autoload.source == PolicySource::kCmdline) {
        out.push_back("peinit.autoload=" + std::string(ToString(policy.autoload.value)));
    }
    if (policy.signing.source == PolicySource::kCmdline) out.push_back("module.sig_enforce=1");
    for (const auto& b : policy.blacklist) {
        if (b.source == PolicySource::kCmdline) out.push_back("modprobe.blacklist=" + b.module);
    }
    return out;
}

std::string BlacklistDigest(const EffectivePolicy& policy) {
    std::vector<std::string> names;
    for (const auto& b : policy.blacklist) names.push_back(b.module);
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    std::string text;
    for (const auto& n : names) text += n + "\n";
    return tpm::Hex(tpm::Sha256(text));
}

namespace {

// SHA-256 of a file's bytes, "" when it is absent (the verifier sees the absence).
std::string FileDigest(const std::string& path, std::string* text = nullptr) {
    auto contents = ReadConfigFile(path);
    if (!contents) {
        if (contents.error().code() != ENOENT) {
            spdlog::error("measure: {}", contents.error().message());
        }
        return "";
    }
    if (text != nullptr) *text = contents->text;
    return tpm::Hex(tpm::Sha256(contents->text));
}

void MeasureImage(BootContext& ctx) {
    std::string text;
    const std::string image_sha256 = FileDigest(ctx.paths.Under(kImageInfoPath).string(), &text);
    std::string key;
    std::string release = ctx.kernel_release;
    if (!text.empty()) {
        if (auto info = ImageInfo::FromJson(text, kImageInfoPath)) key = info->key_fingerprint;
    }
    if (release.empty()) {
        if (auto running = RunningKernelRelease()) release = *running;
    }
    ctx.measurement->Measure(tpm::MakeImageEvent(image_sha256, release, key));
}

void MeasurePolicy(BootContext& ctx) {
    const EffectivePolicy& p = ctx.policy;
    const std::string hive_sha256 =
        ctx.hive.state == HiveState::kAbsent ? "" : FileDigest(ctx.paths.HiveFile().string());
    ctx.measurement->Measure(tpm::MakePolicyEvent(
        hive_sha256, CmdlineTightening(p), p.lock_after_boot.value,
        std::string(ToString(p.autoload.value)), std::string(ToString(p.signing.value)),
        BlacklistDigest(p)));
}

}  // namespace

void WriteMeasurementRecord(const BootContext& ctx) {
    const MeasurementRecord record =
        ctx.measurement ? ctx.measurement->Record() : tpm::NotMeasuredRecord("no TPM");
    if (auto r = WriteFileAtomically(ctx.paths.Under(kMeasurementRecordPath).string(),
                                     record.ToJson());
        !r) {
        spdlog::error("measure: cannot write the boot record: {}", r.error().message());
    }
}

void StartMeasurement(BootContext& ctx) {
    if (!ctx.tpm || !ctx.tpm->Present()) {
        spdlog::info("measure: no TPM{}: this boot is not measured",
                     ctx.tpm ? " (" + ctx.tpm->Name() + ")" : std::string());
        WriteMeasurementRecord(ctx);
        return;
    }
    tpm::MeasureConfig config;
    config.pcr = ctx.hive.MeasurementPcr();
    config.phases = ctx.hive.MeasureBootPhases();
    config.log_path = ctx.paths.Under(tpm::kUserspaceLogPath).string();
    ctx.measurement = std::make_shared<tpm::Measurement>(ctx.tpm, config);
    spdlog::info("measure: TPM {} PCR {}{}", ctx.tpm->Name(), config.pcr,
                 config.phases ? ", boot phases into PCR 11" : "");
    ctx.measurement->MeasurePhase("enter-initrd");
    MeasureImage(ctx);
    MeasurePolicy(ctx);
    WriteMeasurementRecord(ctx);
}

void MeasureModuleSet(BootContext& ctx) {
    if (!ctx.measurement || ctx.measurement->Record().module_count >= 0) return;
    ctx.measurement->MeasureModuleSet();
}

void MeasureLock(BootContext& ctx) {
    if (!ctx.measurement) return;
    const LockOutcome& lock = ctx.lock;
    std::string mechanism = "none";
    if (lock.mechanism == "syscall") {
        mechanism = "syscall";
    } else if (!lock.mechanism.empty()) {
        mechanism = "fallback";  // kernel.modules_disabled=1 on an unpatched kernel
    }
    ctx.measurement->Measure(
        tpm::MakeLockEvent(lock.requested, lock.locked, mechanism, lock.trigger));
    WriteMeasurementRecord(ctx);
}

void MeasureLeaveInitrd(BootContext& ctx) {
    if (!ctx.measurement) return;
    ctx.measurement->Measure(tpm::MakeLeaveInitrdEvent());
    ctx.measurement->MeasurePhase("leave-initrd");
    WriteMeasurementRecord(ctx);
    // Nothing is measured after this: the real root's measurements are its own. The session
    // (kept for the handover) stops measuring, and the TPM is closed before the exec.
    if (ctx.modload) ctx.modload->MeasureWith(nullptr);
    ctx.measurement.reset();
    ctx.tpm.reset();
}

}  // namespace peinit
