// The posture model of `peinitctl status` (status.h): built from peinit's boot records and the
// kernel's live facts, with the problems found in them. Its renderers are status_text.cpp,
// status_json.cpp and status_timeline.cpp.
#include "peinit/core/status.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "peinit/record/policy.h"
#include "peinit/core/status_format.h"

namespace peinit {

using Outcome = ModuleOutcome::Status;

namespace {

std::string Trim(std::string_view s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    return std::string(s);
}

// "1"/"Y" -> "1", "0"/"N" -> "0", anything else as it is.
std::string NormaliseBoolText(const std::string& raw) {
    std::string v = Trim(raw);
    if (v == "Y" || v == "y" || v == "1") return "1";
    if (v == "N" || v == "n" || v == "0") return "0";
    return v;
}

// "none [integrity] confidentiality" -> "integrity".
std::string ActiveLsmLevel(const std::string& raw) {
    auto open = raw.find('[');
    auto close = raw.find(']', open == std::string::npos ? 0 : open);
    if (open == std::string::npos || close == std::string::npos) return Trim(raw);
    return raw.substr(open + 1, close - open - 1);
}

// --- building the model ----------------------------------------------------------------------

void ReadPolicy(const PolicyRecord& r, Status& s) {
    const EffectivePolicy& p = r.policy;
    s.policy_present = true;
    s.hive_state = std::string(ToString(r.hive_state));
    s.hive_path = r.hive_path;
    s.hive_errors = r.hive_errors;
    s.autoload = {std::string(ToString(p.autoload.value)), std::string(ToString(p.autoload.source))};
    s.autoload_allowed = p.autoload_allowed;
    for (const auto& b : p.blacklist) {
        s.blacklist.push_back({b.module, std::string(ToString(b.source))});
    }
    s.signing = {std::string(ToString(p.signing.value)), std::string(ToString(p.signing.source))};
    s.policy_modprobe = p.modprobe.value;
    s.ignored = p.ignored;
    s.lock_requested = p.lock_after_boot.value;
    s.lock_requested_source = std::string(ToString(p.lock_after_boot.source));
}

void ReadModules(ModulesRecord r, Status& s) {
    s.modules_present = true;
    s.modules_total_ms = r.total_ms;
    s.modules_boot_offset_ms = r.boot_offset_ms;
    s.workers = r.workers;
    s.modules_error = r.error;
    if (!r.signing.applied) {
        s.signing_error = r.signing.error;
        if (s.signing_error.empty()) s.signing_error = "signing policy not applied";
    }
    s.modules = std::move(r.modules);
    std::stable_sort(s.modules.begin(), s.modules.end(), [](const auto& a, const auto& b) {
        // Attempted modules by start time; the ones never attempted (no duration) after them.
        bool a_run = a.duration_us > 0 || a.Succeeded() || a.status == Outcome::kFailed;
        bool b_run = b.duration_us > 0 || b.Succeeded() || b.status == Outcome::kFailed;
        if (a_run != b_run) return a_run;
        return a.start_us < b.start_us;
    });
}

// One record's text read as its type: its state in s.records; a missing record is a note, an
// unreadable one (bad JSON, a wrong type, a newer version) a problem.
template <typename T, typename Read>
std::optional<T> LoadRecord(const std::string& name, const RecordText& rec, Status& s, Read read) {
    Status::RecordState state{name, rec.path, "ok", ""};
    std::optional<T> record;
    if (!rec.text) {
        state.state = "missing";
        state.error = rec.error.empty() ? "missing" : rec.error;
        s.notes.push_back("record missing: " + rec.path + " (" + state.error + ")");
    } else if (auto r = read(*rec.text, rec.path); !r) {
        state.state = "invalid";
        state.error = r.error().message();
        s.problems.push_back("record unreadable: " + state.error);
    } else {
        record = std::move(*r);
        s.anything_read = true;
    }
    s.records.push_back(state);
    return record;
}

template <typename T>
std::optional<T> LoadRecord(const std::string& name, const RecordText& rec, Status& s) {
    return LoadRecord<T>(name, rec, s, T::FromJson);
}

// A record only some boots write: read when present (or unreadable), its absence no note.
bool Present(const RecordText& rec) {
    return rec.text || (!rec.error.empty() && rec.error != "missing");
}

void ResolveLock(const KernelFacts& k, const std::optional<LockdownRecord>& rec, Status& s) {
    s.modules_disabled = k.modules_disabled;
    if (k.query_locked) {
        s.locked = *k.query_locked;
        s.locked_from = "module_lockdown";
        s.syscall_available = true;
    } else if (k.sysctl_locked) {
        s.locked = *k.sysctl_locked;
        s.locked_from = "sysctl";
        s.syscall_available = !k.syscall_missing;
    }
    if (!s.locked && !k.modules_disabled && rec) {
        // No kernel fact in this tree (`--root` of records collected from a VM): the lock as
        // the lockdown stage recorded it. One-way, so "locked" still holds; "unlocked" is as of
        // the end of the boot.
        s.locked = rec->locked;
        s.locked_from = "record";
        s.mechanism = rec->locked ? rec->mechanism : "";
        s.syscall_available = rec->mechanism == "syscall";
    } else if (s.locked == true) {
        s.mechanism = "syscall";
    } else if (k.modules_disabled) {
        if (*k.modules_disabled) {
            s.locked = true;
            s.mechanism = "modules_disabled";
            if (s.locked_from.empty() || s.locked_from == "sysctl") {
                s.locked_from = s.locked_from.empty() ? "modules_disabled" : s.locked_from;
            }
        } else if (!s.locked) {
            s.locked = false;
            s.locked_from = "modules_disabled";
        }
    }

    // Who set it: the kernel log's first successful LOCK is authoritative for the syscall; the
    // record covers the boot lock (and the modules_disabled fallback, which logs no line).
    const LockLogEvent* first = nullptr;
    if (k.lock_log) {
        for (const auto& e : *k.lock_log) {
            if (e.result == "locked") {
                first = &e;
                break;
            }
        }
    }
    if (s.mechanism == "syscall" && first != nullptr) {
        s.trigger = first->trigger;
        s.set_by_pid = first->pid;
        s.set_by_comm = first->comm;
        s.set_by_from = "kernel-log";
        s.locked_at_ms = first->time_us / 1000;
        if (rec && rec->locked && rec->trigger == first->trigger) s.locked_at_wall = rec->wall_time;
    } else if (s.locked == true && rec && rec->locked) {
        s.trigger = rec->trigger;
        s.set_by_pid = rec->pid;
        s.set_by_comm = rec->comm;
        s.set_by_from = "record";
        s.locked_at_ms = rec->boot_offset_ms;
        s.locked_at_wall = rec->wall_time;
    }
    if (rec && !s.lock_requested) {
        s.lock_requested = rec->requested;
        s.lock_requested_source = rec->requested_by;
    }
    if (rec) s.lock_error = rec->error;

    if (s.locked == true && s.mechanism == "syscall" && s.set_by_from.empty()) {
        s.notes.push_back(
            "who set the lock is unknown: the kernel log is not readable and the boot record "
            "does not show a boot-time lock (locked at runtime?)");
    }
}

void FindProblems(Status& s) {
    // First: when the boot stopped, everything below is a consequence of where it stopped.
    if (s.boot && s.boot->state == "emergency") {
        s.problems.push_back("boot stopped on the emergency path: " + s.boot->error);
    }
    if (s.lock_requested == true && s.locked == false) {
        s.problems.push_back("lock differs from policy: LockAfterBoot=true (" +
                             s.lock_requested_source + ") but module loading is not locked");
    }
    if (s.lock_requested == false && s.locked == true && !s.trigger.empty() &&
        s.trigger != "runtime-syscall") {
        s.problems.push_back("lock differs from policy: LockAfterBoot=false (" +
                             s.lock_requested_source + ") but the kernel was locked by trigger " +
                             s.trigger);
    }
    if (!s.lock_error.empty()) s.problems.push_back("lockdown failed: " + s.lock_error);
    if (s.measurement && s.measurement->state == MeasurementRecord::kFailed) {
        s.problems.push_back("measured boot stopped: " + s.measurement->error);
    }
    if (s.mechanism == "modules_disabled" && s.modprobe && !s.modprobe->empty()) {
        s.problems.push_back("modules_disabled fallback, but kernel.modprobe is \"" + *s.modprobe +
                             "\": demand loads still start the helper");
    }
    if (s.hive_state == "fallback") {
        s.problems.push_back("hive " + s.hive_path + " not usable, hardened fallback applied: " +
                             Join(s.hive_errors, "; "));
    }
    if (s.autoload.value == "disabled" && s.autoload_disabled == false &&
        !s.locked.value_or(false)) {
        s.problems.push_back(
            "AutoLoadPolicy=disabled but the kernel's autoload gate is not set: only "
            "kernel.modprobe stands between a demand load and the helper");
    }
    if (s.autoload.value == "disabled" && s.modprobe && !s.modprobe->empty() &&
        s.mechanism != "syscall") {
        s.problems.push_back("AutoLoadPolicy=disabled but kernel.modprobe is \"" + *s.modprobe +
                             "\"");
    }
    if (s.signing.value == "enforce" && s.tainted && (*s.tainted & (uint64_t{1} << 13)) != 0) {
        s.problems.push_back("SigningPolicy=enforce but the kernel is tainted E: an unsigned "
                             "module was loaded");
    }
    if (s.signing.value == "enforce" && s.sig_enforce == "0") {
        s.problems.push_back("SigningPolicy=enforce but sig_enforce is 0");
    }
    if (!s.signing_error.empty()) s.problems.push_back("signing: " + s.signing_error);
    if (!s.modules_error.empty()) s.problems.push_back("module stage: " + s.modules_error);
    for (const auto& m : s.modules) {
        // A module a deny list kept out is the policy at work: a note, as in `peinit plan` and
        // `peinit-image build`, not a problem.
        if (m.status == Outcome::kBlacklisted) {
            s.notes.push_back("module " + m.name + " blacklisted (" + m.reason + ")" +
                              (m.requested_by.empty() ? "" : ", requested by " +
                                                                 Join(m.requested_by, ", ")));
        }
        if (!m.IsProblem()) continue;
        std::string detail = m.errno_name;
        if (!m.reason.empty()) detail += (detail.empty() ? "" : ": ") + m.reason;
        s.problems.push_back("module " + m.name + " " + std::string(ToString(m.status)) +
                             (detail.empty() ? "" : ": " + detail));
    }
    for (const auto& d : s.hotplug) {
        if (d.result != "failed" || d.detail.find("not in a verified package") != std::string::npos) {
            continue;
        }
        s.problems.push_back("hot-add: " + d.syspath + " (" + d.modalias + "): " + d.detail);
    }
    for (const auto& m : s.coldplug) {
        // Refusals are the policy at work, and a device whose driver the image does not carry
        // is the image's choice; a package that fails its check or a load the kernel refused
        // is a problem.
        if (m.status != Outcome::kFailed || m.reason.starts_with("not in a verified package")) {
            continue;
        }
        const std::string device = m.Device();
        s.problems.push_back("coldplug: module " + m.name + " failed" +
                             (m.reason.empty() ? "" : ": " + m.reason) +
                             (device.empty() ? "" : " (for " + device + ")"));
    }
    for (const auto& d : s.coldplug_left) {
        s.problems.push_back("coldplug: did not settle before the lock: " + d +
                             " was left without its drivers");
    }
}

}  // namespace

// The exact lines the kernel patch writes for LOCK (kernel/patches/0005,
// module_lockdown_report):
//   module_lockdown: <what> pid=%d uid=%u euid=%u auid=%u ses=%u comm=ENC exe=ENC
//                    cap_eff=%s trigger=%s result=%s[ suppressed=%u]
// with <what> one of the three openings below, each with its one result, and " suppressed=N"
// on refusals only. comm and exe are the caller's: the kernel writes them as
// audit_log_untrustedstring does ("text" without spaces, quotes or control bytes, else the bytes
// in upper-case hex), so neither holds a space and the line splits into exactly its fields.
// Anything else (other openings, other ops' lines, a field out of place) is not lock evidence.
namespace {

// Decodes an audit-encoded value: "text" or upper-case hex of an even length.
std::optional<std::string> DecodeUntrusted(std::string_view v) {
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
        std::string_view inner = v.substr(1, v.size() - 2);
        for (char c : inner) {
            if (c == '"' || static_cast<unsigned char>(c) < 0x21 ||
                static_cast<unsigned char>(c) > 0x7e) {
                return std::nullopt;
            }
        }
        return std::string(inner);
    }
    if (v.empty() || v.size() % 2 != 0) return std::nullopt;
    std::string out;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < v.size(); i += 2) {
        int hi = nibble(v[i]), lo = nibble(v[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<char>(hi * 16 + lo));
    }
    return out;
}

}  // namespace

std::optional<LockLogEvent> ParseLockLogLine(std::string_view message, int64_t time_us) {
    static constexpr std::pair<std::string_view, std::string_view> kOpenings[] = {
        {"module_lockdown: locked by ", "locked"},
        {"module_lockdown: already locked, no-op for ", "already-locked"},
        {"module_lockdown: lock refused (EPERM: needs CAP_SYS_ADMIN) for ", "denied"},
    };
    std::string_view expected;
    std::string_view rest;
    for (const auto& [opening, result] : kOpenings) {
        if (message.starts_with(opening)) {
            expected = result;
            rest = message.substr(opening.size());
        }
    }
    if (expected.empty()) return std::nullopt;
    while (!rest.empty() && (rest.back() == '\n' || rest.back() == '\r')) rest.remove_suffix(1);

    std::vector<std::string_view> fields;
    for (std::size_t pos = 0;;) {
        auto sp = rest.find(' ', pos);
        fields.push_back(rest.substr(pos, sp == std::string_view::npos ? sp : sp - pos));
        if (sp == std::string_view::npos) break;
        pos = sp + 1;
    }
    const bool refusal = expected == "denied";
    constexpr std::string_view kKeys[] = {"pid",     "uid",     "euid",   "auid",       "ses",
                                          "comm",    "exe",     "cap_eff", "trigger", "result",
                                          "suppressed"};
    const std::size_t want = refusal ? 11 : 10;
    if (fields.size() != want) return std::nullopt;
    std::string_view values[11];
    for (std::size_t i = 0; i < want; ++i) {
        const std::string key = std::string(kKeys[i]) + "=";
        if (!fields[i].starts_with(key) || fields[i].size() == key.size()) return std::nullopt;
        values[i] = fields[i].substr(key.size());
    }
    auto all = [](std::string_view v, auto pred) {
        return std::all_of(v.begin(), v.end(), [&](char c) { return pred(static_cast<unsigned char>(c)); });
    };
    auto digit = [](unsigned char c) { return std::isdigit(c) != 0; };
    int64_t numbers[5];
    for (int i = 0; i < 5; ++i) {
        if (values[i].size() > 19 || !all(values[i], digit)) return std::nullopt;
        numbers[i] = std::stoll(std::string(values[i]));
    }
    auto comm = DecodeUntrusted(values[5]);
    if (!comm || !DecodeUntrusted(values[6])) return std::nullopt;
    if (!all(values[7], [](unsigned char c) { return std::isxdigit(c) != 0; })) return std::nullopt;
    auto word = [](unsigned char c) { return std::islower(c) || c == '-'; };
    if (!all(values[8], word) || values[9] != expected) return std::nullopt;
    if (refusal && (values[10].size() > 10 || !all(values[10], digit))) return std::nullopt;

    LockLogEvent e;
    e.time_us = time_us;
    e.result = std::string(values[9]);
    e.trigger = std::string(values[8]);
    e.comm = *comm;
    e.pid = numbers[0];
    e.uid = numbers[1];
    return e;
}

bool Status::RecordMissing() const {
    return std::any_of(records.begin(), records.end(),
                       [](const RecordState& r) { return r.state == "missing"; });
}

int Status::ExitCode() const {
    if (!anything_read) return 2;
    return problems.empty() ? 0 : 1;
}

// Who answers the kernel's demand loads (request_module) and what it enforces.
std::string DescribeHelper(const Status& s) {
    if (s.locked.value_or(false)) return "none: module loading is locked";
    if (s.autoload_disabled.value_or(false)) {
        return "none: autoload is disabled in the kernel (request_module fails at once)";
    }
    if (!s.modprobe) return "";
    const std::string policy =
        s.autoload.value.empty() ? "" : "AutoLoadPolicy=" + s.autoload.value + " and the blacklist";
    if (s.modprobe->empty()) return "none: demand loads fail at once";
    if (*s.modprobe == "/run/peinit/ro/bin/peinit-modprobe") {
        return "peinit's, on the read-only /run/peinit/ro: enforces " + policy +
               " as recorded in /run/peinit/ro/policy.json";
    }
    if (*s.modprobe == "/sbin/peinit-modprobe") {
        return "peinit's: enforces " + policy + " as recorded in /run/peinit/policy.json";
    }
    return "\"" + *s.modprobe + "\" is not peinit's helper: peinit does not enforce " + policy +
           " on demand loads";
}

// The kernel's taint letters (kernel/panic.c, taint_flags[]), bit 0 first.
std::vector<std::string> TaintFlags(uint64_t mask) {
    static constexpr std::string_view kFlags[] = {
        "P: proprietary module loaded",     "F: module force-loaded",
        "S: kernel running on an out-of-specification system",
        "R: module force-unloaded",         "M: machine check exception",
        "B: bad page referenced",           "U: taint requested by user space",
        "D: kernel oops or BUG",            "A: ACPI table overridden by user",
        "W: kernel warning",                "C: staging driver loaded",
        "I: firmware bug workaround",       "O: out-of-tree module loaded",
        "E: unsigned module loaded",        "L: soft lockup",
        "K: kernel live-patched",           "X: auxiliary taint (distribution)",
        "T: kernel built with the struct randomization plugin"};
    std::vector<std::string> out;
    for (std::size_t bit = 0; bit < 64; ++bit) {
        if ((mask & (uint64_t{1} << bit)) == 0) continue;
        out.push_back(bit < std::size(kFlags) ? std::string(kFlags[bit])
                                              : "bit " + std::to_string(bit));
    }
    return out;
}

std::optional<uint64_t> ParseTaint(std::string_view raw) {
    const std::string text = Trim(raw);
    if (text.empty() || text.size() > 20) return std::nullopt;
    uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    return v;
}

Status BuildStatus(const StatusInputs& in) {
    Status s;
    const KernelFacts& k = in.kernel;
    s.notes = k.notes;
    if (k.query_locked || k.sysctl_locked || k.modules_disabled || k.modprobe || k.sig_enforce ||
        k.lsm_lockdown) {
        s.anything_read = true;
    }
    if (k.sig_enforce) s.sig_enforce = NormaliseBoolText(*k.sig_enforce);
    if (k.lsm_lockdown) s.lsm_lockdown = ActiveLsmLevel(*k.lsm_lockdown);
    if (k.tainted) {
        s.tainted = ParseTaint(*k.tainted);
        if (s.tainted) s.taint_flags = TaintFlags(*s.tainted);
    }
    if (k.modprobe) s.modprobe = Trim(*k.modprobe);
    s.autoload_disabled = k.autoload_disabled;
    s.modprobe_sealed = k.modprobe_sealed;

    auto policy = LoadRecord<PolicyRecord>("policy", in.policy, s);
    if (policy) ReadPolicy(*policy, s);
    std::optional<LockdownRecord> lockdown = LoadRecord<LockdownRecord>("lockdown", in.lockdown, s);
    if (auto r = LoadRecord<ModulesRecord>("modules", in.modules, s)) ReadModules(std::move(*r), s);
    // boot.json exists only after an emergency: its absence is the normal case, not a note.
    if (Present(in.boot)) s.boot = LoadRecord<BootRecord>("boot", in.boot, s);
    if (in.image.text) {
        auto info = ImageInfo::FromJson(*in.image.text, in.image.path);
        s.records.push_back({"image", in.image.path, info ? "ok" : "invalid",
                             info ? "" : info.error().message()});
        if (info) {
            s.image = std::move(*info);
        } else {
            s.notes.push_back("image record unreadable: " + info.error().message());
        }
    }
    if (in.measurement.text) {
        auto m = MeasurementRecord::FromJson(*in.measurement.text, in.measurement.path);
        s.records.push_back({"measurements", in.measurement.path, m ? "ok" : "invalid",
                             m ? "" : m.error().message()});
        if (m) {
            s.measurement = std::move(*m);
        } else {
            s.notes.push_back("measurement record unreadable: " + m.error().message());
        }
    }
    if (Present(in.coldplug)) {
        if (auto r = LoadRecord<ColdplugRecord>("coldplug", in.coldplug, s)) {
            s.coldplug = std::move(r->modules);
            for (const auto& d : r->settle.left) {
                s.coldplug_left.push_back(d.syspath + " (" + d.modalias + ")");
            }
        }
    }
    if (Present(in.services)) {
        if (auto r = LoadRecord<ServicesRecord>("services", in.services, s)) {
            for (auto& v : r->services) {
                s.services.push_back({v.name, v.privileges, v.state, v.result});
            }
        }
    }
    if (Present(in.hotplug)) {
        if (auto r = LoadRecord<HotplugRecord>("hotplug", in.hotplug, s)) {
            for (auto& d : r->devices) {
                s.hotplug.push_back({d.syspath, d.modalias, d.result, d.detail, d.modules});
            }
        }
    }

    ResolveLock(k, lockdown, s);
    s.helper = DescribeHelper(s);
    if (s.locked.value_or(false) || s.autoload_disabled.value_or(false)) {
        s.autoload_enforced_by = "kernel";
    } else if (s.modprobe) {
        s.autoload_enforced_by = "helper-path";
    }
    if (in.blacklist_exported) s.blacklist_export = "/run/modprobe.d/peinit-blacklist.conf";
    FindProblems(s);
    return s;
}

ModuleCounts CountModules(const Status& s) {
    ModuleCounts c;
    for (const auto& m : s.modules) {
        if (m.Succeeded())
            ++c.ok;
        else if (m.status == Outcome::kFailed)
            ++c.failed;
        else if (m.status == Outcome::kBlacklisted)
            ++c.blacklisted;
        else if (m.status == Outcome::kMissing)
            ++c.missing;
        else if (m.status == Outcome::kNoDevice)
            ++c.no_device;
        else
            ++c.skipped;
    }
    return c;
}

std::vector<ModuleRow> BlameRows(const Status& s) {
    std::vector<ModuleRow> rows;
    for (const auto& m : s.modules) {
        if (m.status == Outcome::kLoaded || m.status == Outcome::kAlreadyLoaded ||
            m.status == Outcome::kFailed) {
            rows.push_back(m);
        }
    }
    std::sort(rows.begin(), rows.end(), [](const ModuleRow& a, const ModuleRow& b) {
        return a.duration_us != b.duration_us ? a.duration_us > b.duration_us : a.name < b.name;
    });
    return rows;
}

}  // namespace peinit
