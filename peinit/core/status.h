#pragma once

// The status model behind `peinitctl status`, `modules` and `timeline`: built from the
// kernel's facts (read by peinit/sys/status_sources.h) and peinit's boot record
// (/run/peinit/{policy,lockdown,modules}.json, and boot.json after an emergency), then rendered
// as text, JSON (STATUS-JSON.md, version 1) or an SVG chart. Everything here is pure: parsing is
// done on text the caller read, so tests build a Status from fixture strings.
//
// The kernel is the authority for what is enforced (lock flag, sig_enforce, kernel.modprobe);
// the record says what peinit was asked to do and why. A problem is anything that failed or a
// lock state that differs from what the policy asked; problems decide the exit code.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/record/image.h"
#include "peinit/record/measurement.h"
#include "peinit/record/modules.h"
#include "peinit/record/stages.h"

namespace peinit {

// One `module_lockdown: ...` line from the kernel log (kernel/README.md, R-07).
struct LockLogEvent {
    int64_t time_us = 0;  // kernel log timestamp: microseconds since boot
    std::string result;   // "locked", "already-locked", "denied"
    int64_t pid = 0;
    int64_t uid = -1;
    std::string comm;
    std::string trigger;  // "registry", "runtime-syscall", "boot-orchestrator-step"
};

// Parses one kernel log message (without the kmsg "prio,seq,ts,flags;" prefix). Returns nullopt
// for lines that are not module_lockdown lines.
std::optional<LockLogEvent> ParseLockLogLine(std::string_view message, int64_t time_us);

// What was read from the running kernel. nullopt / empty: not readable (the reason is in notes).
struct KernelFacts {
    // module_lockdown(QUERY): nullopt when the syscall could not be asked (ENOSYS, --root).
    std::optional<bool> query_locked;
    bool syscall_missing = false;             // QUERY failed with ENOSYS: unpatched kernel
    std::optional<bool> sysctl_locked;        // /proc/sys/kernel/module_loading_locked
    std::optional<bool> modules_disabled;     // /proc/sys/kernel/modules_disabled
    std::optional<std::string> modprobe;      // /proc/sys/kernel/modprobe ("" = empty)
    // The kernel's one-way autoload gates: module_lockdown(QUERY_AUTOLOAD /
    // QUERY_MODPROBE), else /proc/sys/kernel/{module_autoload_disabled,modprobe_sealed}.
    // nullopt: this kernel has no such gate (stock kernel, or not readable).
    std::optional<bool> autoload_disabled;
    std::optional<bool> modprobe_sealed;
    std::optional<std::string> sig_enforce;   // /sys/module/module/parameters/sig_enforce
    std::optional<std::string> lsm_lockdown;  // /sys/kernel/security/lockdown, raw
    std::optional<std::string> tainted;       // /proc/sys/kernel/tainted, raw (a decimal mask)
    // Every module_lockdown line of the kernel log, oldest first (when the log was readable).
    std::optional<std::vector<LockLogEvent>> lock_log;
    std::vector<std::string> notes;  // why something could not be read
};

// The text of one record file, or why it is not there.
struct RecordText {
    std::string path;
    std::optional<std::string> text;  // nullopt: missing or unreadable
    std::string error;                // "missing" or the read error
};

struct StatusInputs {
    KernelFacts kernel;
    RecordText policy;    // policy.json (config stage)
    RecordText lockdown;  // lockdown.json (lockdown stage)
    RecordText modules;   // modules.json (module stage)
    // coldplug.json (coldplug stage): read when present; its absence (a boot that stopped
    // earlier, or an older image) is not a note.
    RecordText coldplug;
    // services.json (PID 1, once services run) and hotplug.json (PID 1's hot-add, only once a
    // device was added after coldplug): read when present, their absence is not a note.
    RecordText services;
    RecordText hotplug;
    // boot.json: written only by PID 1's emergency path, so its absence is normal and not
    // reported (unlike the three stage records).
    RecordText boot;
    // image.json: the image's provenance (peinit/record/image.h), copied by the config stage
    // from the image; absent for an image built before it was recorded (not a note).
    RecordText image;
    // measurements.json: what PID 1 measured into the TPM (peinit/record/measurement.h);
    // absent for an image from before measured boot (not a note).
    RecordText measurement;
    // /run/modprobe.d/peinit-blacklist.conf exists (the handover stage's export for libkmod).
    bool blacklist_exported = false;
};



// A policy value as the record has it, with its source (hive.h's Sourced<T> is the typed one).
struct SourcedText {
    std::string value;
    std::string source;  // "default", "hive", "fallback", "cmdline"
};

struct BlacklistRow {
    std::string module;
    std::string source;
};

struct Status {
    static constexpr int kVersion = 1;

    // --- lock (kernel facts first, then the record and the kernel log) ---------------------
    std::optional<bool> locked;  // nullopt: unknown
    // Where `locked` was read: "module_lockdown", "sysctl", "modules_disabled", "".
    std::string locked_from;
    // "syscall" (module_loading_locked) or "modules_disabled" (unpatched fallback), "" unlocked.
    std::string mechanism;
    bool syscall_available = false;
    std::optional<bool> modules_disabled;
    std::string trigger;  // of the lock that set the flag
    std::optional<int64_t> set_by_pid;
    std::string set_by_comm;
    std::string set_by_from;              // "kernel-log" or "record"
    std::optional<int64_t> locked_at_ms;  // boot offset
    std::string locked_at_wall;           // RFC 3339 UTC (record only)
    // The policy's request (policy.json lock_after_boot, lockdown.json otherwise).
    std::optional<bool> lock_requested;
    std::string lock_requested_source;
    std::string lock_error;  // lockdown.json error

    // --- kernel knobs -----------------------------------------------------------------------
    std::optional<std::string> sig_enforce;   // "1"/"0" (Y/N normalised)
    std::optional<std::string> lsm_lockdown;  // active level: "none", "integrity", ...
    // kernel.tainted: the mask, and its flags as the kernel prints them ("E: unsigned module
    // loaded", ...), lowest bit first; nullopt when not readable.
    std::optional<uint64_t> tainted;
    std::vector<std::string> taint_flags;
    std::optional<std::string> modprobe;      // kernel.modprobe as the kernel has it
    // Who answers demand loads and what it enforces (from the lock, kernel.modprobe, policy).
    std::string helper;
    // The kernel's autoload gates; nullopt: the kernel has none (stock kernel).
    std::optional<bool> autoload_disabled;  // request_module fails at once for every caller
    std::optional<bool> modprobe_sealed;    // kernel.modprobe can no longer be written
    // "kernel" (autoload disabled in the kernel, or loading locked) or "helper-path" (only
    // kernel.modprobe stands between a demand load and the policy).
    std::string autoload_enforced_by;

    // --- policy (policy.json) -----------------------------------------------------------------
    bool policy_present = false;
    std::string hive_state;  // "loaded", "absent", "fallback"
    std::string hive_path;
    std::vector<std::string> hive_errors;
    SourcedText autoload;
    std::vector<std::string> autoload_allowed;
    std::vector<BlacklistRow> blacklist;
    SourcedText signing;
    std::optional<std::string> policy_modprobe;
    std::vector<std::string> ignored;
    // Where the blacklist is exported for the system's own libkmod users ("" when it is not).
    std::string blacklist_export;

    // --- modules (modules.json) -------------------------------------------------------------
    bool modules_present = false;
    std::vector<ModuleRow> modules;  // sorted by start time
    int64_t modules_total_ms = 0;
    int64_t modules_boot_offset_ms = 0;
    int64_t workers = 0;
    std::string modules_error;
    std::string signing_error;  // modules.json signing.error when not applied

    // --- coldplug (coldplug.json) ---------------------------------------------------------------
    // The modules coldplug attempted or refused for the devices present (requested_by names the
    // device); a failure is a problem, a refusal by the policy is not.
    std::vector<ModuleRow> coldplug;
    // The devices coldplug left without their drivers when it reached its settle bound (R-37:
    // settle.left), each "SYSPATH (MODALIAS)": a problem.
    std::vector<std::string> coldplug_left;

    // --- services (services.json) --------------------------------------------------------------
    // Each service PID 1 runs and the privileges its unit grants: every other one's
    // capability is not in the service's bounding set.
    struct ServiceRow {
        std::string name;
        std::vector<std::string> privileges;  // "SeLoadDriverPrivilege", "SeTcbPrivilege"
        std::string state;                    // "waiting", "running", "exited", "failed"
        std::string result;                   // "exit 0", or why it did not start
    };
    std::vector<ServiceRow> services;

    // --- hot-add (hotplug.json) -----------------------------------------------------------------
    // Devices added after coldplug while peinit stayed PID 1 and what was done for each;
    // a "failed" one is a problem (unless its driver is not in the image's packages).
    struct HotplugRow {
        std::string syspath, modalias, result, detail;
        std::vector<std::string> modules;
    };
    std::vector<HotplugRow> hotplug;

    // --- image (image.json) --------------------------------------------------------------------
    // What the machine booted from: generator, kernel release, module mode, signing key.
    std::optional<ImageInfo> image;
    // --- measured boot (measurements.json) -------------------------------------------------------
    // What PID 1 measured: PCR, events, module-set digest, or why nothing (no TPM); a
    // TPM error that stopped measurement is a problem.
    std::optional<MeasurementRecord> measurement;

    // --- boot (boot.json) ----------------------------------------------------------------------
    // Set when the boot stopped on the emergency path: the record says which stage and why.
    std::optional<BootRecord> boot;

    // --- records ------------------------------------------------------------------------------
    struct RecordState {
        std::string name;  // "policy", "lockdown", "modules", "boot" (only when present)
        std::string path;
        std::string state;  // "ok", "missing", "invalid"
        std::string error;
    };
    std::vector<RecordState> records;
    std::vector<std::string> problems;  // each makes the exit code 1
    std::vector<std::string> notes;     // informational (missing record, unreadable facts)
    bool anything_read = false;

    // 0: everything as configured; 1: a problem; 2: nothing could be read.
    int ExitCode() const;
    bool RecordMissing() const;
};

// kernel.tainted as the kernel prints it: one "LETTER: meaning" per set bit, bit 0 first.
std::vector<std::string> TaintFlags(uint64_t mask);
std::optional<uint64_t> ParseTaint(std::string_view text);

Status BuildStatus(const StatusInputs& inputs);

// The boot-time modules by outcome (the status line and the JSON summary).
struct ModuleCounts {
    int ok = 0, failed = 0, skipped = 0, blacklisted = 0, missing = 0, no_device = 0;
};
ModuleCounts CountModules(const Status& status);

// Renderers. `color` is never used: output is plain so it can be parsed and diffed.
std::string RenderStatusText(const Status& status);
std::string RenderStatusJson(const Status& status);
// `failed_only`: only rows that are problems or skipped.
std::string RenderModulesText(const Status& status, bool failed_only);
std::string RenderModulesJson(const Status& status, bool failed_only);
// `peinitctl blame` (like `systemd-analyze blame`): the modules whose load was attempted
// (loaded, already-loaded, failed), longest load first, ties by name.
std::vector<ModuleRow> BlameRows(const Status& status);
std::string RenderBlameText(const Status& status);
// {"version": 1, "present": bool, "modules": [...]}: the module objects of RenderModulesJson.
std::string RenderBlameJson(const Status& status);
std::string RenderTimelineText(const Status& status);
// An SVG chart like `systemd-analyze plot`: one <rect class="bar"> per module.
std::string RenderTimelineSvg(const Status& status);

}  // namespace peinit
