#pragma once

// The registry hive baked into the image (spec §1-2): a TOML file whose tables are registry
// keys and whose entries are values. The format is documented in units/HIVE.md.
//
// Parsing is pure: the caller passes the text and the file's owner and mode (peinit/sys reads
// them from the open descriptor), so the trust check is testable without root.
//
// a hive that is malformed (TOML error, wrong type, unknown value, unknown key under
// Machine\System\Modules) or untrusted (not owned by root, group/world-writable) is not used at
// all; the hardened fallback applies instead (LockAfterBoot=true, AutoLoadPolicy=disabled) and
// the state says `fallback` with every reason.
//
// EffectivePolicy combines the hive with the kernel command line, which can only tighten.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/cmdline.h"
#include "peinit/core/config_error.h"
#include "peinit/core/module_policy.h"

namespace peinit {

// The canonical registry paths peinit reads (matched case-insensitively).
inline constexpr std::string_view kModulesKeyPath = "Machine\\System\\Modules";
inline constexpr std::string_view kKernelKeyPath = "Machine\\System\\Kernel";
// Measured boot (R-33, ATTESTATION.md): Pcr and MeasureBootPhases.
inline constexpr std::string_view kMeasurementKeyPath = "Machine\\System\\Measurement";

enum class HiveState {
    kAbsent,    // no hive file: every knob has its default
    kLoaded,    // a valid, trusted hive
    kFallback,  // malformed or untrusted: hardened fallback values
};
std::string_view ToString(HiveState state);

// Owner and mode of the hive file, from fstat() of the descriptor that was read.
struct FileTrust {
    uint32_t uid = 0;
    uint32_t gid = 0;
    uint32_t mode = 0644;  // permission bits (st_mode & 07777)
};

// What the hive sets; nullopt / empty means "not set" (the getters apply defaults).
struct HiveValues {
    std::optional<bool> lock_after_boot;
    std::optional<AutoLoadPolicy> autoload_policy;
    std::vector<std::string> autoload_allowed;  // normalised module names, de-duplicated
    std::vector<std::string> blacklist;         // normalised module names, de-duplicated
    std::optional<SigningPolicy> signing_policy;
    std::optional<std::string> modprobe;  // Machine\System\Kernel\Modprobe
    std::optional<int> module_workers;
    std::optional<int> measurement_pcr;        // Machine\System\Measurement\Pcr
    std::optional<bool> measure_boot_phases;   // Machine\System\Measurement\MeasureBootPhases
};

struct Hive {
    static constexpr bool kDefaultLockAfterBoot = false;
    static constexpr AutoLoadPolicy kDefaultAutoLoadPolicy = AutoLoadPolicy::kEnabled;
    static constexpr SigningPolicy kDefaultSigningPolicy = SigningPolicy::kWarn;  // build floor
    static constexpr int kMaxModuleWorkers = 256;
    // The kernel's modprobe_path buffer is 256 bytes including the terminator.
    static constexpr size_t kMaxModprobePathLength = 255;
    // The PCR peinit measures into (ATTESTATION.md, "Which PCR and why").
    static constexpr int kDefaultMeasurementPcr = 13;

    HiveState state = HiveState::kAbsent;
    std::string path;
    // Every problem that put the hive into fallback; empty unless state == kFallback.
    ConfigErrors errors;
    HiveValues values;

    // Typed getters: the hive's value, else the default. In fallback the hardened values.
    bool LockAfterBoot() const { return values.lock_after_boot.value_or(kDefaultLockAfterBoot); }
    AutoLoadPolicy AutoLoad() const {
        return values.autoload_policy.value_or(kDefaultAutoLoadPolicy);
    }
    SigningPolicy Signing() const { return values.signing_policy.value_or(kDefaultSigningPolicy); }
    const std::vector<std::string>& AutoLoadAllowed() const { return values.autoload_allowed; }
    const std::vector<std::string>& Blacklist() const { return values.blacklist; }
    // nullopt: peinit's own helper (the module stage knows its path).
    const std::optional<std::string>& Modprobe() const { return values.modprobe; }
    int MeasurementPcr() const { return values.measurement_pcr.value_or(kDefaultMeasurementPcr); }
    bool MeasureBootPhases() const { return values.measure_boot_phases.value_or(false); }
    int ModuleWorkers(int default_workers) const {
        return values.module_workers.value_or(default_workers);
    }
    // The errors joined with "; " (for a one-line status), "" when not in fallback.
    std::string FallbackReason() const;
};

// Why `pcr` cannot hold peinit's measurements ("" when it can): 0-7 belong to the firmware and
// boot loader, 10 to IMA, 16 is the resettable debug PCR, 17-22 are the dynamic-launch PCRs
// (locality 0 cannot extend them) and 23 is resettable. 8, 9, 11, 12, 13, 14 and 15 are allowed.
std::string MeasurementPcrProblem(int64_t pcr);

// The hive when there is no hive file.
Hive AbsentHive();

// The hardened fallback for `path`, carrying the reasons.
Hive FallbackHive(std::string path, ConfigErrors errors);

// Parses a hive. `trust` is the file's owner and mode, or null to skip the trust check (offline
// checks of a source tree, whose ownership is not the image's). Never fails: problems put the
// result into fallback.
Hive ParseHive(const std::string& path, std::string_view text, const FileTrust* trust);

// Where an effective value came from (for `peinitctl status`).
enum class PolicySource { kDefault, kHive, kFallback, kCmdline };
std::string_view ToString(PolicySource source);

template <typename T>
struct Sourced {
    T value;
    PolicySource source = PolicySource::kDefault;
};

struct BlacklistEntry {
    std::string module;  // normalised
    PolicySource source = PolicySource::kHive;
    bool operator==(const BlacklistEntry&) const = default;
};

// The policy the module stage enforces: the hive tightened by the command line.
struct EffectivePolicy {
    Sourced<bool> lock_after_boot{false};
    Sourced<AutoLoadPolicy> autoload{AutoLoadPolicy::kEnabled};
    // From the hive only: the command line cannot widen the allow-list.
    std::vector<std::string> autoload_allowed;
    // Hive entries first, then command-line additions; each module once.
    std::vector<BlacklistEntry> blacklist;
    Sourced<SigningPolicy> signing{SigningPolicy::kWarn};
    Sourced<std::optional<std::string>> modprobe{std::nullopt};
    // Not a security knob: peinit.workers= overrides the hive in either direction.
    Sourced<std::optional<int>> workers{std::nullopt};
    HiveState hive_state = HiveState::kAbsent;
    // Command-line settings that would have loosened the hive and were ignored, e.g.
    // "peinit.lock=0 ignored: LockAfterBoot=true from the hive cannot be loosened".
    std::vector<std::string> ignored;

    bool IsBlacklisted(std::string_view module) const;
};

EffectivePolicy ComputeEffectivePolicy(const Hive& hive, const Cmdline& cmdline);

}  // namespace peinit
