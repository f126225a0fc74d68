#include "peinit/core/status.h"

#include "peinit/core/json.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cctype>
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

namespace peinit {

namespace {

namespace pt = boost::property_tree;

// --- reading records (Boost.PropertyTree's JSON parser; no exception leaves this file) -------

std::optional<pt::ptree> ParseJson(const std::string& text, std::string& error) {
    try {
        std::istringstream in(text);
        pt::ptree tree;
        pt::read_json(in, tree);
        return tree;
    } catch (const pt::json_parser_error& e) {
        error = "line " + std::to_string(e.line()) + ": " + e.message();
    } catch (const std::exception& e) {
        error = e.what();
    }
    return std::nullopt;
}

std::string Str(const pt::ptree& t, const std::string& key) {
    return t.get<std::string>(pt::ptree::path_type(key, '.'), "");
}
int64_t Int(const pt::ptree& t, const std::string& key) {
    return t.get<int64_t>(pt::ptree::path_type(key, '.'), 0);
}
std::optional<bool> Bool(const pt::ptree& t, const std::string& key) {
    auto v = t.get_optional<bool>(pt::ptree::path_type(key, '.'));
    if (!v) return std::nullopt;
    return *v;
}
std::vector<std::string> Strings(const pt::ptree& t, const std::string& key) {
    std::vector<std::string> out;
    if (auto child = t.get_child_optional(pt::ptree::path_type(key, '.'))) {
        for (const auto& [k, v] : *child) out.push_back(v.data());
    }
    return out;
}

std::string Join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (const auto& i : items) {
        if (!out.empty()) out += sep;
        out += i;
    }
    return out;
}

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

std::string FormatMs(int64_t ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld.%03lld s", static_cast<long long>(ms / 1000),
                  static_cast<long long>(ms % 1000));
    return buf;
}

std::string FormatUsAsMs(int64_t us) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(us) / 1000.0);
    return buf;
}

// --- building the model ----------------------------------------------------------------------

void ReadPolicy(const pt::ptree& t, Status& s) {
    s.policy_present = true;
    s.hive_state = Str(t, "hive.state");
    s.hive_path = Str(t, "hive.path");
    s.hive_errors = Strings(t, "hive.errors");
    s.autoload = {Str(t, "autoload.value"), Str(t, "autoload.source")};
    s.autoload_allowed = Strings(t, "autoload_allowed");
    if (auto bl = t.get_child_optional("blacklist")) {
        for (const auto& [k, v] : *bl) s.blacklist.push_back({Str(v, "module"), Str(v, "source")});
    }
    s.signing = {Str(t, "signing.value"), Str(t, "signing.source")};
    if (auto m = t.get_optional<std::string>("modprobe")) s.policy_modprobe = *m;
    s.ignored = Strings(t, "ignored");
    if (auto v = Bool(t, "lock_after_boot.value")) {
        s.lock_requested = *v;
        s.lock_requested_source = Str(t, "lock_after_boot.source");
    }
}

// The "modules" list of modules.json or coldplug.json (coldplug's rows have no unit, errno,
// start or waits; those read as empty).
std::vector<ModuleRow> ReadModuleRows(const pt::ptree& t) {
    std::vector<ModuleRow> rows;
    if (auto list = t.get_child_optional("modules")) {
        for (const auto& [k, v] : *list) {
            ModuleRow row;
            row.name = Str(v, "name");
            row.status = Str(v, "status");
            row.unit = Str(v, "unit");
            row.errno_name = Str(v, "errno");
            row.error = Int(v, "error");
            row.reason = Str(v, "reason");
            row.package = Str(v, "package");
            row.start_us = Int(v, "start_us");
            row.duration_us = Int(v, "duration_us");
            row.requested_by = Strings(v, "requested_by");
            row.waits_for = Strings(v, "waits_for");
            if (!row.waits_for.empty() && v.get_child_optional("ready_us")) {
                row.ready_us = Int(v, "ready_us");
            }
            rows.push_back(std::move(row));
        }
    }
    return rows;
}

// services.json (peinit/init/services.h).
void ReadServices(const pt::ptree& t, Status& s) {
    if (auto list = t.get_child_optional("services")) {
        for (const auto& [k, v] : *list) {
            s.services.push_back({Str(v, "name"), Strings(v, "privileges"), Str(v, "state"),
                                  Str(v, "result")});
        }
    }
}

// hotplug.json (peinit/init/hotplug.h).
void ReadHotplug(const pt::ptree& t, Status& s) {
    if (auto list = t.get_child_optional("devices")) {
        for (const auto& [k, v] : *list) {
            s.hotplug.push_back({Str(v, "syspath"), Str(v, "modalias"), Str(v, "result"),
                                 Str(v, "detail"), Strings(v, "modules")});
        }
    }
}

void ReadModules(const pt::ptree& t, Status& s) {
    s.modules_present = true;
    s.modules_total_ms = Int(t, "total_ms");
    s.modules_boot_offset_ms = Int(t, "boot_offset_ms");
    s.workers = Int(t, "workers");
    s.modules_error = Str(t, "error");
    if (Bool(t, "signing.applied") == false) {
        s.signing_error = Str(t, "signing.error");
        if (s.signing_error.empty()) s.signing_error = "signing policy not applied";
    }
    s.modules = ReadModuleRows(t);
    std::stable_sort(s.modules.begin(), s.modules.end(), [](const auto& a, const auto& b) {
        // Attempted modules by start time; the ones never attempted (no duration) after them.
        bool a_run = a.duration_us > 0 || a.Succeeded() || a.status == "failed";
        bool b_run = b.duration_us > 0 || b.Succeeded() || b.status == "failed";
        if (a_run != b_run) return a_run;
        return a.start_us < b.start_us;
    });
}

struct LockdownRecord {
    bool requested = false;
    std::string requested_by, mechanism, trigger, error, comm, wall_time;
    bool locked = false;
    int64_t pid = 0, boot_offset_ms = 0;
};

LockdownRecord ReadLockdown(const pt::ptree& t) {
    LockdownRecord r;
    r.requested = Bool(t, "requested").value_or(false);
    r.requested_by = Str(t, "requested_by");
    r.mechanism = Str(t, "mechanism");
    r.trigger = Str(t, "trigger");
    r.locked = Bool(t, "locked").value_or(false);
    r.error = Str(t, "error");
    r.pid = Int(t, "pid");
    r.comm = Str(t, "comm");
    r.boot_offset_ms = Int(t, "boot_offset_ms");
    r.wall_time = Str(t, "wall_time");
    return r;
}

BootRecord ReadBoot(const pt::ptree& t) {
    BootRecord r;
    r.state = Str(t, "state");
    r.stage = Str(t, "stage");
    r.error = Str(t, "error");
    r.boot_offset_ms = Int(t, "boot_offset_ms");
    r.wall_time = Str(t, "wall_time");
    return r;
}

std::optional<pt::ptree> LoadRecord(const std::string& name, const RecordText& rec, Status& s) {
    Status::RecordState state{name, rec.path, "ok", ""};
    std::optional<pt::ptree> tree;
    if (!rec.text) {
        state.state = "missing";
        state.error = rec.error.empty() ? "missing" : rec.error;
        s.notes.push_back("record missing: " + rec.path + " (" + state.error + ")");
    } else {
        std::string error;
        tree = ParseJson(*rec.text, error);
        if (!tree) {
            state.state = "invalid";
            state.error = error;
            s.problems.push_back("record " + rec.path + " is not valid JSON: " + error);
        } else if (tree->get<int>("version", 0) != 1) {
            state.state = "invalid";
            state.error = "unsupported version " + tree->get<std::string>("version", "(none)");
            s.problems.push_back("record " + rec.path + ": " + state.error);
            tree.reset();
        } else {
            s.anything_read = true;
        }
    }
    s.records.push_back(state);
    return tree;
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
        if (m.status == "blacklisted") {
            s.notes.push_back("module " + m.name + " blacklisted (" + m.reason + ")" +
                              (m.requested_by.empty() ? "" : ", requested by " +
                                                                 Join(m.requested_by, ", ")));
        }
        if (!m.IsProblem()) continue;
        std::string detail = m.errno_name;
        if (!m.reason.empty()) detail += (detail.empty() ? "" : ": ") + m.reason;
        s.problems.push_back("module " + m.name + " " + m.status +
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
        if (m.status != "failed" || m.reason.starts_with("not in a verified package")) continue;
        std::string device;
        for (const auto& r : m.requested_by) {
            if (r.starts_with("coldplug ")) device = r.substr(9);
        }
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

    if (auto t = LoadRecord("policy", in.policy, s)) ReadPolicy(*t, s);
    std::optional<LockdownRecord> lockdown;
    if (auto t = LoadRecord("lockdown", in.lockdown, s)) lockdown = ReadLockdown(*t);
    if (auto t = LoadRecord("modules", in.modules, s)) ReadModules(*t, s);
    // boot.json exists only after an emergency: its absence is the normal case, not a note.
    if (in.boot.text || (!in.boot.error.empty() && in.boot.error != "missing")) {
        if (auto t = LoadRecord("boot", in.boot, s)) s.boot = ReadBoot(*t);
    }
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
    if (in.coldplug.text || (!in.coldplug.error.empty() && in.coldplug.error != "missing")) {
        if (auto t = LoadRecord("coldplug", in.coldplug, s)) {
            s.coldplug = ReadModuleRows(*t);
            if (auto left = t->get_child_optional("settle.left")) {
                for (const auto& [_, dev] : *left) {
                    s.coldplug_left.push_back(dev.get<std::string>("syspath", "") + " (" +
                                              dev.get<std::string>("modalias", "") + ")");
                }
            }
        }
    }
    if (in.services.text || (!in.services.error.empty() && in.services.error != "missing")) {
        if (auto t = LoadRecord("services", in.services, s)) ReadServices(*t, s);
    }
    if (in.hotplug.text || (!in.hotplug.error.empty() && in.hotplug.error != "missing")) {
        if (auto t = LoadRecord("hotplug", in.hotplug, s)) ReadHotplug(*t, s);
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

// --- text ------------------------------------------------------------------------------------

namespace {

void Line(std::ostringstream& out, std::string_view label, const std::string& value) {
    out << "  " << label;
    for (size_t i = label.size(); i < 17; ++i) out << ' ';
    out << value << "\n";
}

std::string SourceSuffix(const std::string& source) {
    return source.empty() ? "" : " (" + source + ")";
}

struct Counts {
    int ok = 0, failed = 0, skipped = 0, blacklisted = 0, missing = 0, no_device = 0;
};
Counts Count(const Status& s) {
    Counts c;
    for (const auto& m : s.modules) {
        if (m.Succeeded())
            ++c.ok;
        else if (m.status == "failed")
            ++c.failed;
        else if (m.status == "blacklisted")
            ++c.blacklisted;
        else if (m.status == "missing")
            ++c.missing;
        else if (m.status == "no-device")
            ++c.no_device;
        else
            ++c.skipped;
    }
    return c;
}

std::string LockText(const Status& s) {
    if (!s.locked) return "unknown (no lock state readable)";
    std::string out = *s.locked ? "locked" : "unlocked";
    if (*s.locked) {
        out += s.mechanism == "modules_disabled" ? " (kernel.modules_disabled fallback)"
                                                 : " (module_lockdown syscall)";
    } else if (!s.syscall_available && s.locked_from != "record") {
        out += " (no module_lockdown syscall: unpatched kernel)";
    }
    if (s.locked_from == "record") {
        out += ", as recorded at boot in lockdown.json (the kernel's own state is not in this "
               "tree)";
    }
    return out;
}

}  // namespace

std::string RenderStatusText(const Status& s) {
    std::ostringstream out;
    if (!s.problems.empty()) {
        out << "Problems:\n";
        for (const auto& p : s.problems) out << "  ! " << p << "\n";
    }
    if (!s.notes.empty()) {
        out << "Notes:\n";
        for (const auto& n : s.notes) out << "  - " << n << "\n";
    }
    out << "Module loading:\n";
    Line(out, "lock", LockText(s));
    if (s.locked == true) {
        std::string who;
        if (s.set_by_pid) who = "pid " + std::to_string(*s.set_by_pid);
        if (!s.set_by_comm.empty()) who += " (" + s.set_by_comm + ")";
        if (!s.trigger.empty())
            who += (who.empty() ? "" : ", ") + std::string("trigger ") + s.trigger;
        if (!who.empty()) Line(out, "set by", who + " [" + s.set_by_from + "]");
        if (s.locked_at_ms) {
            Line(out, "when",
                 FormatMs(*s.locked_at_ms) + " after boot" +
                     (s.locked_at_wall.empty() ? "" : ", " + s.locked_at_wall));
        }
    }
    if (s.lock_requested) {
        Line(out, "LockAfterBoot",
             std::string(*s.lock_requested ? "true" : "false") +
                 SourceSuffix(s.lock_requested_source));
    }
    Line(out, "sig_enforce", s.sig_enforce.value_or("unknown"));
    Line(out, "lockdown LSM", s.lsm_lockdown.value_or("not present"));
    if (s.tainted) {
        Line(out, "tainted", *s.tainted == 0 ? "0 (not tainted)"
                                             : std::to_string(*s.tainted) + " (" +
                                                   Join(s.taint_flags, "; ") + ")");
    }
    if (s.modprobe) Line(out, "kernel.modprobe", s.modprobe->empty() ? "(empty)" : *s.modprobe);
    if (s.modprobe_sealed) {
        Line(out, "modprobe sealed",
             *s.modprobe_sealed ? "yes: kernel.modprobe can no longer be changed"
                                : "no: root can still change kernel.modprobe");
    }
    if (!s.helper.empty()) Line(out, "demand loads", s.helper);
    if (s.autoload_disabled.value_or(false)) {
        Line(out, "autoload gate", "disabled in the kernel: request_module fails at once");
    } else if (s.autoload_disabled && s.locked.value_or(false)) {
        // Open but moot: a locked kernel refuses every load, demand loads included.
        Line(out, "autoload gate", "open, moot: module loading is locked");
    } else if (s.autoload_disabled) {
        Line(out, "autoload gate", "open: the policy is enforced by the helper path");
    } else if (s.modprobe) {
        Line(out, "autoload gate",
             "not in this kernel: the policy is enforced only by the helper path");
    }

    if (s.image) {
        out << "Image:\n";
        Line(out, "built by", s.image->generator + ", " + s.image->built);
        Line(out, "kernel", s.image->kernel_release);
        Line(out, "modules from", s.image->module_mode);
        Line(out, "signing key", "SHA-256 " + s.image->key_fingerprint);
    }

    if (s.measurement) {
        const MeasurementRecord& m = *s.measurement;
        out << "Measured boot:\n";
        if (m.state == MeasurementRecord::kNotMeasured) {
            Line(out, "state", "not measured: " + (m.reason.empty() ? "unknown" : m.reason));
        } else {
            Line(out, "state", m.state == MeasurementRecord::kMeasured ? "measured" : "stopped");
            Line(out, "PCR", std::to_string(m.pcr) + " (SHA-256 bank, TPM " + m.tpm + ")");
            Line(out, "events", std::to_string(m.events.size()) + " in " + m.log);
            if (m.module_count >= 0) {
                Line(out, "module set",
                     std::to_string(m.module_count) + " modules, SHA-256 " + m.module_set_sha256);
            }
            if (!m.error.empty()) Line(out, "TPM error", m.error);
        }
    }

    out << "Policy:\n";
    if (!s.policy_present) {
        Line(out, "record", "missing");
    } else {
        Line(out, "hive", s.hive_state + (s.hive_path.empty() ? "" : " " + s.hive_path));
        Line(out, "AutoLoadPolicy", s.autoload.value + SourceSuffix(s.autoload.source));
        if (!s.autoload_allowed.empty())
            Line(out, "AutoLoadAllowed", Join(s.autoload_allowed, " "));
        std::vector<std::string> bl;
        for (const auto& b : s.blacklist) bl.push_back(b.module + SourceSuffix(b.source));
        Line(out, "Blacklist", bl.empty() ? "(none)" : Join(bl, ", "));
        if (!s.blacklist_export.empty()) {
            Line(out, "exported to",
                 s.blacklist_export +
                     " (modprobe, udev, systemd-modules-load; not a direct finit_module)");
        }
        Line(out, "SigningPolicy", s.signing.value + SourceSuffix(s.signing.source));
        for (const auto& i : s.ignored) Line(out, "ignored", i);
    }

    if (!s.services.empty()) {
        out << "Services:\n";
        for (const auto& sv : s.services) {
            std::string privileges;
            for (const auto& p : sv.privileges) privileges += (privileges.empty() ? "" : ", ") + p;
            out << "  " << sv.name << std::string(sv.name.size() < 16 ? 17 - sv.name.size() : 1, ' ')
                << "privileges: " << (privileges.empty() ? "none" : privileges) << " (" << sv.state
                << (sv.result.empty() ? "" : " " + sv.result) << ")\n";
        }
    }
    if (!s.hotplug.empty()) {
        out << "Hot-added devices:\n";
        for (const auto& d : s.hotplug) {
            std::string modules;
            for (const auto& m : d.modules) modules += (modules.empty() ? "" : ",") + m;
            out << "  " << d.syspath << "  " << d.result
                << (modules.empty() ? "" : " " + modules)
                << (d.detail.empty() ? "" : ": " + d.detail) << "\n";
        }
    }
    out << "Boot-time modules:\n";
    if (!s.modules_present && s.boot && !s.boot->stage.empty()) {
        Line(out, "record", "missing: not attempted, the boot stopped in stage " + s.boot->stage);
    } else if (!s.modules_present) {
        Line(out, "record", "missing");
    } else {
        Counts c = Count(s);
        Line(out, "summary",
             std::to_string(c.ok) + " ok, " + std::to_string(c.failed) + " failed, " +
                 std::to_string(c.missing) + " missing, " + std::to_string(c.skipped) +
                 " skipped, " + std::to_string(c.blacklisted) + " blacklisted" +
                 (c.no_device > 0 ? ", " + std::to_string(c.no_device) + " no device" : "") +
                 " in " + std::to_string(s.modules_total_ms) + " ms");
        size_t width = 4;
        for (const auto& m : s.modules) width = std::max(width, m.name.size());
        for (const auto& m : s.modules) {
            std::ostringstream row;
            row << m.name << std::string(width + 2 - m.name.size(), ' ') << m.status;
            row << std::string(m.status.size() < 15 ? 15 - m.status.size() : 1, ' ')
                << FormatUsAsMs(m.duration_us) << " ms";
            if (!m.errno_name.empty() || !m.reason.empty()) {
                row << "  " << m.errno_name << (m.errno_name.empty() ? "" : " ") << m.reason;
            }
            out << "    " << row.str() << "\n";
        }
    }
    return out.str();
}

// --- JSON (STATUS-JSON.md) -------------------------------------------------------------------

namespace {

toml::array StrArray(const std::vector<std::string>& items) {
    toml::array a;
    for (const auto& i : items) a.push_back(i);
    return a;
}

toml::array ModuleArray(const std::vector<ModuleRow>& rows, bool failed_only) {
    toml::array list;
    for (const auto& m : rows) {
        if (failed_only && m.Succeeded()) continue;
        list.push_back(toml::table{
            {"name", m.name},
            {"status", m.status},
            {"unit", m.unit},
            {"errno", m.errno_name},
            {"error", m.error},
            {"reason", m.reason},
            {"package", m.package},
            {"start_us", m.start_us},
            {"duration_us", m.duration_us},
            {"requested_by", StrArray(m.requested_by)},
            {"waits_for", StrArray(m.waits_for)},
            {"ready_us", m.ready_us},
        });
    }
    return list;
}

}  // namespace

std::string RenderStatusJson(const Status& s) {
    toml::table lock{
        {"read_from", s.locked_from},
        {"mechanism", s.mechanism},
        {"syscall_available", s.syscall_available},
        {"trigger", s.trigger},
        {"set_by_from", s.set_by_from},
        {"comm", s.set_by_comm},
        {"wall_time", s.locked_at_wall},
        {"requested_source", s.lock_requested_source},
        {"error", s.lock_error},
    };
    if (s.locked) lock.insert("locked", *s.locked);
    if (s.modules_disabled) lock.insert("modules_disabled", *s.modules_disabled);
    if (s.set_by_pid) lock.insert("pid", *s.set_by_pid);
    if (s.locked_at_ms) lock.insert("boot_offset_ms", *s.locked_at_ms);
    if (s.lock_requested) lock.insert("requested", *s.lock_requested);

    toml::table kernel;
    if (s.sig_enforce) kernel.insert("sig_enforce", *s.sig_enforce);
    if (s.lsm_lockdown) kernel.insert("lsm_lockdown", *s.lsm_lockdown);
    if (s.tainted) {
        toml::array flags;
        for (const auto& f : s.taint_flags) flags.push_back(f);
        kernel.insert("tainted", static_cast<int64_t>(*s.tainted));
        kernel.insert("taint_flags", std::move(flags));
    }
    if (s.modprobe) kernel.insert("modprobe", *s.modprobe);
    if (!s.helper.empty()) kernel.insert("helper", s.helper);
    if (s.autoload_disabled) kernel.insert("autoload_disabled", *s.autoload_disabled);
    if (s.modprobe_sealed) kernel.insert("modprobe_sealed", *s.modprobe_sealed);
    if (!s.autoload_enforced_by.empty()) kernel.insert("autoload_enforced_by", s.autoload_enforced_by);

    toml::array blacklist;
    for (const auto& b : s.blacklist) {
        blacklist.push_back(toml::table{{"module", b.module}, {"source", b.source}});
    }
    toml::table policy{
        {"present", s.policy_present},
        {"hive",
         toml::table{
             {"state", s.hive_state}, {"path", s.hive_path}, {"errors", StrArray(s.hive_errors)}}},
        {"autoload", toml::table{{"value", s.autoload.value}, {"source", s.autoload.source}}},
        {"autoload_allowed", StrArray(s.autoload_allowed)},
        {"blacklist", std::move(blacklist)},
        {"signing", toml::table{{"value", s.signing.value}, {"source", s.signing.source}}},
        {"ignored", StrArray(s.ignored)},
    };
    if (s.policy_modprobe) policy.insert("modprobe", *s.policy_modprobe);
    policy.insert("blacklist_export", s.blacklist_export);

    Counts c = Count(s);
    toml::table modules{
        {"present", s.modules_present},
        {"total_ms", s.modules_total_ms},
        {"boot_offset_ms", s.modules_boot_offset_ms},
        {"workers", s.workers},
        {"error", s.modules_error},
        {"summary", toml::table{{"ok", c.ok},
                                {"failed", c.failed},
                                {"missing", c.missing},
                                {"skipped", c.skipped},
                                {"blacklisted", c.blacklisted},
                                {"no_device", c.no_device}}},
        {"list", ModuleArray(s.modules, false)},
    };

    toml::array records;
    for (const auto& r : s.records) {
        records.push_back(toml::table{
            {"name", r.name}, {"path", r.path}, {"state", r.state}, {"error", r.error}});
    }
    toml::table root{
        {"version", Status::kVersion},      {"exit_code", s.ExitCode()},
        {"problems", StrArray(s.problems)}, {"notes", StrArray(s.notes)},
        {"lock", std::move(lock)},          {"kernel", std::move(kernel)},
        {"policy", std::move(policy)},      {"modules", std::move(modules)},
        {"records", std::move(records)},
    };
    if (!s.services.empty()) {
        toml::array list;
        for (const auto& sv : s.services) {
            list.push_back(toml::table{{"name", sv.name},
                                       {"privileges", StrArray(sv.privileges)},
                                       {"state", sv.state},
                                       {"result", sv.result}});
        }
        root.insert("services", toml::table{{"list", std::move(list)}});
    }
    if (!s.hotplug.empty()) {
        toml::array list;
        for (const auto& d : s.hotplug) {
            list.push_back(toml::table{{"syspath", d.syspath},
                                       {"modalias", d.modalias},
                                       {"result", d.result},
                                       {"modules", StrArray(d.modules)},
                                       {"detail", d.detail}});
        }
        root.insert("hotplug", toml::table{{"devices", std::move(list)}});
    }
    if (!s.coldplug.empty()) {
        toml::array list;
        for (const auto& m : s.coldplug) {
            list.push_back(toml::table{{"name", m.name},
                                       {"status", m.status},
                                       {"reason", m.reason},
                                       {"package", m.package},
                                       {"requested_by", StrArray(m.requested_by)}});
        }
        root.insert("coldplug", toml::table{{"list", std::move(list)}});
    }
    if (s.image) {
        root.insert("image", toml::table{{"generator", s.image->generator},
                                         {"kernel_release", s.image->kernel_release},
                                         {"module_mode", s.image->module_mode},
                                         {"key_fingerprint", s.image->key_fingerprint},
                                         {"built", s.image->built}});
    }
    if (s.measurement) {
        const MeasurementRecord& m = *s.measurement;
        root.insert("measurement", toml::table{{"state", m.state},
                                               {"reason", m.reason},
                                               {"error", m.error},
                                               {"tpm", m.tpm},
                                               {"pcr", m.pcr},
                                               {"log", m.log},
                                               {"events", static_cast<int64_t>(m.events.size())},
                                               {"module_count", m.module_count},
                                               {"module_set_sha256", m.module_set_sha256}});
    }
    if (s.boot) {
        root.insert("boot", toml::table{{"state", s.boot->state},
                                        {"stage", s.boot->stage},
                                        {"error", s.boot->error},
                                        {"boot_offset_ms", s.boot->boot_offset_ms},
                                        {"wall_time", s.boot->wall_time}});
    }
    return FormatJson(root);
}

std::string RenderBootRecordJson(const BootRecord& record) {
    toml::table root{
        {"version", 1},
        {"state", record.state},
        {"stage", record.stage},
        {"error", record.error},
        {"boot_offset_ms", record.boot_offset_ms},
        {"wall_time", record.wall_time},
    };
    return FormatJson(root);
}

std::string RenderModulesJson(const Status& s, bool failed_only) {
    toml::table root{
        {"version", Status::kVersion},
        {"present", s.modules_present},
        {"modules", ModuleArray(s.modules, failed_only)},
    };
    return FormatJson(root);
}

std::vector<ModuleRow> BlameRows(const Status& s) {
    std::vector<ModuleRow> rows;
    for (const auto& m : s.modules) {
        if (m.status == "loaded" || m.status == "already-loaded" || m.status == "failed") {
            rows.push_back(m);
        }
    }
    std::sort(rows.begin(), rows.end(), [](const ModuleRow& a, const ModuleRow& b) {
        return a.duration_us != b.duration_us ? a.duration_us > b.duration_us : a.name < b.name;
    });
    return rows;
}

std::string RenderBlameText(const Status& s) {
    std::vector<ModuleRow> rows = BlameRows(s);
    size_t width = 0;
    for (const auto& m : rows) width = std::max(width, FormatUsAsMs(m.duration_us).size());
    std::ostringstream out;
    for (const auto& m : rows) {
        std::string ms = FormatUsAsMs(m.duration_us);
        out << std::string(width - ms.size(), ' ') << ms << " ms  " << m.name;
        if (m.status != "loaded") {
            std::string detail = m.errno_name;
            if (!m.reason.empty()) detail += (detail.empty() ? "" : " ") + m.reason;
            out << " (" << m.status << (detail.empty() ? "" : ": " + detail) << ")";
        }
        out << "\n";
    }
    return out.str();
}

std::string RenderBlameJson(const Status& s) {
    toml::table root{
        {"version", Status::kVersion},
        {"present", s.modules_present},
        {"modules", ModuleArray(BlameRows(s), false)},
    };
    return FormatJson(root);
}

std::string RenderModulesText(const Status& s, bool failed_only) {
    std::ostringstream out;
    if (!s.modules_present) {
        out << "no module record (" << (s.records.size() > 2 ? s.records[2].path : "") << ")\n";
        return out.str();
    }
    size_t name_w = 6, status_w = 6, unit_w = 4;
    for (const auto& m : s.modules) {
        name_w = std::max(name_w, m.name.size());
        status_w = std::max(status_w, m.status.size());
        unit_w = std::max(unit_w, m.unit.size());
    }
    auto pad = [](const std::string& v, size_t w) {
        return v + std::string(w + 2 - v.size(), ' ');
    };
    out << pad("START", 9) << pad("MODULE", name_w) << pad("STATUS", status_w) << pad("MS", 8)
        << pad("UNIT", unit_w) << "DETAIL\n";
    for (const auto& m : s.modules) {
        if (failed_only && m.Succeeded()) continue;
        std::string detail = m.errno_name;
        if (!m.reason.empty()) detail += (detail.empty() ? "" : " ") + m.reason;
        std::string line = pad(FormatUsAsMs(m.start_us), 9) + pad(m.name, name_w) +
                           pad(m.status, status_w) + pad(FormatUsAsMs(m.duration_us), 8) +
                           pad(m.unit.empty() ? "-" : m.unit, unit_w) + detail;
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out << line << "\n";
    }
    return out.str();
}

// --- timeline ----------------------------------------------------------------------------------

namespace {

// When each module's dependencies had all been attempted, as the module stage recorded it.
std::map<std::string, int64_t> ReadyTimes(const Status& s) {
    std::map<std::string, int64_t> ready;
    for (const auto& m : s.modules) {
        if (m.ready_us >= 0) ready[m.name] = m.ready_us;
    }
    return ready;
}

std::string Colour(const std::string& status) {
    if (status == "loaded") return "#2e7d32";
    if (status == "already-loaded") return "#0277bd";
    if (status == "builtin") return "#00897b";
    if (status == "failed") return "#c62828";
    if (status == "missing") return "#ef6c00";
    if (status == "blacklisted") return "#424242";
    if (status == "no-device") return "#90a4ae";
    return "#9e9e9e";  // skipped
}

std::string XmlEscape(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

// A tick step (in us) of 1, 2 or 5 times a power of ten giving about 8 ticks.
int64_t TickStep(int64_t span_us) {
    int64_t step = 1;
    while (span_us / step > 10) {
        if (span_us / (step * 2) <= 10) return step * 2;
        if (span_us / (step * 5) <= 10) return step * 5;
        step *= 10;
    }
    return step;
}

}  // namespace

std::string RenderTimelineText(const Status& s) {
    std::ostringstream out;
    if (!s.modules_present) return "no module record\n";
    int64_t span = 1;
    for (const auto& m : s.modules) span = std::max(span, m.start_us + m.duration_us);
    constexpr int kCols = 50;
    size_t width = 6;
    for (const auto& m : s.modules) width = std::max(width, m.name.size());
    auto ready = ReadyTimes(s);
    out << "module stage: " << s.modules.size() << " modules, " << FormatUsAsMs(span)
        << " ms (each column " << FormatUsAsMs(span / kCols + 1) << " ms; '.' waiting for a "
        << "dependency, '#' loading, 'x' failed)\n";
    for (const auto& m : s.modules) {
        std::string bar(kCols, ' ');
        int from = static_cast<int>(m.start_us * kCols / span);
        int to = static_cast<int>((m.start_us + m.duration_us) * kCols / span);
        if (auto it = ready.find(m.name); it != ready.end()) {
            for (int i = static_cast<int>(it->second * kCols / span); i < from && i < kCols; ++i) {
                bar[i] = '.';
            }
        }
        char fill = m.status == "failed" ? 'x' : m.Succeeded() ? '#' : '-';
        for (int i = from; i <= std::max(from, to - 1) && i < kCols; ++i) bar[i] = fill;
        std::string line = m.name + std::string(width + 2 - m.name.size(), ' ') + "|" + bar + "| " +
                           FormatUsAsMs(m.start_us) + " +" + FormatUsAsMs(m.duration_us) + " ms " +
                           m.status;
        out << line << "\n";
    }
    return out.str();
}

std::string RenderTimelineSvg(const Status& s) {
    constexpr int kLabelW = 170, kChartW = 800, kRowH = 22, kTop = 60, kBarH = 14;
    int64_t span = 1;
    for (const auto& m : s.modules) span = std::max(span, m.start_us + m.duration_us);
    int64_t step = TickStep(span);
    span = ((span + step - 1) / step) * step;  // end on a tick
    auto x = [&](int64_t us) {
        return kLabelW + static_cast<double>(us) * kChartW / static_cast<double>(span);
    };
    const int rows = static_cast<int>(s.modules.size());
    const int legend_y = kTop + rows * kRowH + 40;
    const int height = legend_y + 40;
    const int width = kLabelW + kChartW + 40;
    std::map<std::string, int> row_of;
    for (int i = 0; i < rows; ++i) row_of[s.modules[i].name] = i;
    auto ready = ReadyTimes(s);

    std::ostringstream out;
    char buf[512];
    out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    out << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << width
        << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << " " << height << "\">\n";
    out << "<style>text{font-family:sans-serif;font-size:11px;fill:#212121}"
           ".tick{stroke:#e0e0e0}.dep{stroke:#757575;stroke-width:0.8;fill:none}"
           ".title{font-size:14px;font-weight:bold}</style>\n";
    out << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height
        << "\" fill=\"#ffffff\"/>\n";
    Counts c = Count(s);
    out << "<text class=\"title\" x=\"10\" y=\"20\">peinit module stage: " << rows << " modules, "
        << c.ok << " ok, " << c.failed << " failed, " << c.skipped + c.missing + c.no_device << " not loaded, "
        << c.blacklisted << " blacklisted; " << s.modules_total_ms << " ms, " << s.workers
        << " workers</text>\n";
    // Axis with ticks and labels.
    out << "<g class=\"axis\">\n";
    for (int64_t t = 0; t <= span; t += step) {
        std::snprintf(buf, sizeof buf,
                      "<line class=\"tick\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
                      "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n",
                      x(t), kTop - 8, x(t), kTop + rows * kRowH, x(t), kTop - 12,
                      FormatUsAsMs(t).c_str());
        out << buf;
    }
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">time since the start of "
                  "the module stage (ms)</text>\n<text x=\"10\" y=\"%d\">module</text>\n",
                  kLabelW + kChartW / 2.0, kTop + rows * kRowH + 20, kTop - 12);
    out << buf << "</g>\n";
    // Bars: a light segment from "dependencies live" to the start, then the load itself.
    for (int i = 0; i < rows; ++i) {
        const ModuleRow& m = s.modules[i];
        int y = kTop + i * kRowH + (kRowH - kBarH) / 2;
        std::string colour = Colour(m.status);
        std::snprintf(buf, sizeof buf, "<text x=\"%d\" y=\"%d\">%s</text>\n", 10, y + kBarH - 3,
                      XmlEscape(m.name).c_str());
        out << buf;
        if (auto it = ready.find(m.name); it != ready.end() && it->second < m.start_us) {
            std::snprintf(buf, sizeof buf,
                          "<rect class=\"wait\" x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                          "fill=\"%s\" fill-opacity=\"0.25\"><title>%s waited %s ms after its "
                          "dependencies were live</title></rect>\n",
                          x(it->second), y, x(m.start_us) - x(it->second), kBarH, colour.c_str(),
                          XmlEscape(m.name).c_str(), FormatUsAsMs(m.start_us - it->second).c_str());
            out << buf;
        }
        double w = std::max(1.5, x(m.start_us + m.duration_us) - x(m.start_us));
        std::string tip = m.name + ": " + m.status + ", start " + FormatUsAsMs(m.start_us) +
                          " ms, " + FormatUsAsMs(m.duration_us) + " ms";
        if (!m.reason.empty()) tip += " (" + m.reason + ")";
        std::snprintf(
            buf, sizeof buf,
            "<rect class=\"bar\" data-module=\"%s\" data-status=\"%s\" x=\"%.1f\" "
            "y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"><title>%s</title></rect>\n",
            XmlEscape(m.name).c_str(), m.status.c_str(), x(m.start_us), y, w, kBarH, colour.c_str(),
            XmlEscape(tip).c_str());
        out << buf;
        std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%d\">%s ms</text>\n",
                      x(m.start_us) + w + 3, y + kBarH - 3, FormatUsAsMs(m.duration_us).c_str());
        out << buf;
    }
    // Dependency lines: from the end of a dependency's bar to the start of its dependent's.
    for (int i = 0; i < rows; ++i) {
        const ModuleRow& m = s.modules[i];
        for (const auto& d : m.waits_for) {
            auto it = row_of.find(d);
            if (it == row_of.end()) continue;
            const ModuleRow& dep = s.modules[it->second];
            int64_t dep_end = dep.start_us + dep.duration_us;
            if (dep_end > m.start_us) continue;
            std::snprintf(buf, sizeof buf, "<path class=\"dep\" d=\"M%.1f %d V%d H%.1f\"/>\n",
                          x(dep_end), kTop + it->second * kRowH + kRowH / 2,
                          kTop + i * kRowH + kRowH / 2, x(m.start_us));
            out << buf;
        }
    }
    // Legend.
    out << "<g class=\"legend\">\n";
    int lx = 10;
    for (const char* status :
         {"loaded", "already-loaded", "builtin", "failed", "missing", "skipped", "blacklisted",
          "no-device"}) {
        std::snprintf(buf, sizeof buf,
                      "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                      "<text x=\"%d\" y=\"%d\">%s</text>\n",
                      lx, legend_y, Colour(status).c_str(), lx + 16, legend_y + 10, status);
        out << buf;
        lx += 30 + static_cast<int>(std::string_view(status).size()) * 7;
    }
    std::snprintf(buf, sizeof buf,
                  "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"#2e7d32\" "
                  "fill-opacity=\"0.25\"/><text x=\"%d\" y=\"%d\">waiting after its "
                  "dependencies were live</text>\n<path class=\"dep\" d=\"M%d %d h20\"/>"
                  "<text x=\"%d\" y=\"%d\">dependency</text>\n",
                  lx, legend_y, lx + 16, legend_y + 10, lx + 280, legend_y + 6, lx + 304,
                  legend_y + 10);
    out << buf << "</g>\n</svg>\n";
    return out.str();
}

}  // namespace peinit
