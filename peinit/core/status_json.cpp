// The status model as JSON (peinit/tools/STATUS-JSON.md): `peinitctl status --json`, `modules
// --json`, `blame --json`, and the boot record of the emergency path.
#include "peinit/core/status.h"

#include <toml++/toml.h>

#include "peinit/core/json.h"

namespace peinit {

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
            {"status", std::string(ToString(m.status))},
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

    ModuleCounts c = CountModules(s);
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
                                       {"status", std::string(ToString(m.status))},
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

std::string RenderModulesJson(const Status& s, bool failed_only) {
    toml::table root{
        {"version", Status::kVersion},
        {"present", s.modules_present},
        {"modules", ModuleArray(s.modules, failed_only)},
    };
    return FormatJson(root);
}

std::string RenderBlameJson(const Status& s) {
    toml::table root{
        {"version", Status::kVersion},
        {"present", s.modules_present},
        {"modules", ModuleArray(BlameRows(s), false)},
    };
    return FormatJson(root);
}
}  // namespace peinit
