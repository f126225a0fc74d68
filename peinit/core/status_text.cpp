// The status model as text: `peinitctl status`, `modules`, `blame` (and PID 1's emergency
// status, which links this renderer and the model only).
#include "peinit/core/status.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "peinit/core/status_format.h"

namespace peinit {

using status_format::FormatUsAsMs;

namespace {

// --- text ------------------------------------------------------------------------------------

std::string FormatMs(int64_t ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lld.%03lld s", static_cast<long long>(ms / 1000),
                  static_cast<long long>(ms % 1000));
    return buf;
}

void Line(std::ostringstream& out, std::string_view label, const std::string& value) {
    out << "  " << label;
    for (size_t i = label.size(); i < 17; ++i) out << ' ';
    out << value << "\n";
}

std::string SourceSuffix(const std::string& source) {
    return source.empty() ? "" : " (" + source + ")";
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
        ModuleCounts c = CountModules(s);
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
            row << m.name << std::string(width + 2 - m.name.size(), ' ') << m.StatusName();
            row << std::string(m.StatusName().size() < 15 ? 15 - m.StatusName().size() : 1, ' ')
                << FormatUsAsMs(m.duration_us) << " ms";
            if (!m.errno_name.empty() || !m.reason.empty()) {
                row << "  " << m.errno_name << (m.errno_name.empty() ? "" : " ") << m.reason;
            }
            out << "    " << row.str() << "\n";
        }
    }
    return out.str();
}

std::string RenderBlameText(const Status& s) {
    std::vector<ModuleRow> rows = BlameRows(s);
    size_t width = 0;
    for (const auto& m : rows) width = std::max(width, FormatUsAsMs(m.duration_us).size());
    std::ostringstream out;
    for (const auto& m : rows) {
        std::string ms = FormatUsAsMs(m.duration_us);
        out << std::string(width - ms.size(), ' ') << ms << " ms  " << m.name;
        if (m.status != ModuleOutcome::Status::kLoaded) {
            std::string detail = m.errno_name;
            if (!m.reason.empty()) detail += (detail.empty() ? "" : " ") + m.reason;
            out << " (" << m.StatusName() << (detail.empty() ? "" : ": " + detail) << ")";
        }
        out << "\n";
    }
    return out.str();
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
        status_w = std::max(status_w, m.StatusName().size());
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
                           pad(m.StatusName(), status_w) + pad(FormatUsAsMs(m.duration_us), 8) +
                           pad(m.unit.empty() ? "-" : m.unit, unit_w) + detail;
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out << line << "\n";
    }
    return out.str();
}

}  // namespace peinit
