#include "peinit/record/stages.h"

#include "peinit/core/json.h"
#include "peinit/record/record_toml.h"

namespace peinit {

namespace {

toml::array ModuleRows(const std::vector<ModuleRow>& rows) {
    toml::array out;
    for (const auto& r : rows) out.push_back(ToToml(r));
    return out;
}

}  // namespace

std::string LockdownRecord::ToJson() const {
    return FormatJson(toml::table{
        {"version", version},
        {"requested", requested},
        {"requested_by", requested_by},
        {"mechanism", mechanism},
        {"trigger", trigger},
        {"locked", locked},
        {"error", error},
        {"pid", pid},
        {"comm", comm},
        {"boot_offset_ms", boot_offset_ms},
        {"wall_time", wall_time},
    });
}

Result<LockdownRecord> LockdownRecord::FromJson(std::string_view text, const std::string& file) {
    return ReadRecord<LockdownRecord>(text, file, kVersion, [](RecordFields& f, auto& r) {
        f.Get("version", r.version)
            .Get("requested", r.requested)
            .Get("requested_by", r.requested_by)
            .Get("mechanism", r.mechanism)
            .Get("trigger", r.trigger)
            .Get("locked", r.locked)
            .Get("error", r.error)
            .Get("pid", r.pid)
            .Get("comm", r.comm)
            .Get("boot_offset_ms", r.boot_offset_ms)
            .Get("wall_time", r.wall_time);
    });
}

std::string AutoloadRecord::ToJson() const {
    return FormatJson(toml::table{
        {"version", version},
        {"policy", policy},
        {"source", source},
        {"helper", helper},
        {"helper_source", helper_source},
        {"read_back", read_back},
        {"allowed", TomlStrings(allowed)},
        {"error", error},
        {"gate", gate},
    });
}

Result<AutoloadRecord> AutoloadRecord::FromJson(std::string_view text, const std::string& file) {
    return ReadRecord<AutoloadRecord>(text, file, kVersion, [](RecordFields& f, auto& r) {
        f.Get("version", r.version)
            .Get("policy", r.policy)
            .Get("source", r.source)
            .Get("helper", r.helper)
            .Get("helper_source", r.helper_source)
            .Get("read_back", r.read_back)
            .Get("allowed", r.allowed)
            .Get("error", r.error)
            .Get("gate", r.gate);
    });
}

std::string ColdplugRecord::ToJson() const {
    toml::array devs;
    for (const auto& d : devices) {
        devs.push_back(toml::table{{"syspath", d.syspath},
                                   {"modalias", d.modalias},
                                   {"modules", TomlStrings(d.modules)},
                                   {"error", d.error},
                                   {"round", d.round}});
    }
    toml::array left;
    for (const auto& d : settle.left) {
        left.push_back(toml::table{{"syspath", d.syspath}, {"modalias", d.modalias}});
    }
    return FormatJson(toml::table{
        {"version", version},
        {"policy", policy},
        {"total_ms", total_ms},
        {"devices", std::move(devs)},
        {"modules", ModuleRows(modules)},
        {"settle", toml::table{{"rounds", settle.rounds},
                               {"settled", settle.settled},
                               {"quiet_ms", settle.quiet_ms},
                               {"timeout_ms", settle.timeout_ms},
                               {"left", std::move(left)}}},
        {"error", error},
    });
}

Result<ColdplugRecord> ColdplugRecord::FromJson(std::string_view text, const std::string& file) {
    return ReadRecord<ColdplugRecord>(text, file, kVersion, [](RecordFields& f, auto& r) {
        f.Get("version", r.version)
            .Get("policy", r.policy)
            .Get("total_ms", r.total_ms)
            .Objects("devices", r.devices,
                     [](RecordFields& d, Device& v) {
                         d.Get("syspath", v.syspath)
                             .Get("modalias", v.modalias)
                             .Get("modules", v.modules)
                             .Get("error", v.error)
                             .Get("round", v.round);
                     })
            .Objects("modules", r.modules, ReadModuleRow)
            .Object("settle", r.settle,
                    [](RecordFields& s, Settle& v) {
                        s.Get("rounds", v.rounds)
                            .Get("settled", v.settled)
                            .Get("quiet_ms", v.quiet_ms)
                            .Get("timeout_ms", v.timeout_ms)
                            .Objects("left", v.left, [](RecordFields& l, Left& x) {
                                l.Get("syspath", x.syspath).Get("modalias", x.modalias);
                            });
                    })
            .Get("error", r.error);
    });
}

std::string HotplugRecord::ToJson() const {
    toml::array devs;
    for (const auto& d : devices) {
        devs.push_back(toml::table{{"syspath", d.syspath},
                                   {"modalias", d.modalias},
                                   {"result", d.result},
                                   {"modules", TomlStrings(d.modules)},
                                   {"detail", d.detail},
                                   {"boot_offset_ms", d.boot_offset_ms}});
    }
    return FormatJson(toml::table{
        {"version", version},
        {"policy", policy},
        {"devices", std::move(devs)},
        {"modules", ModuleRows(modules)},
    });
}

Result<HotplugRecord> HotplugRecord::FromJson(std::string_view text, const std::string& file) {
    return ReadRecord<HotplugRecord>(text, file, kVersion, [](RecordFields& f, auto& r) {
        f.Get("version", r.version)
            .Get("policy", r.policy)
            .Objects("devices", r.devices,
                     [](RecordFields& d, Device& v) {
                         d.Get("syspath", v.syspath)
                             .Get("modalias", v.modalias)
                             .Get("result", v.result)
                             .Get("modules", v.modules)
                             .Get("detail", v.detail)
                             .Get("boot_offset_ms", v.boot_offset_ms);
                     })
            .Objects("modules", r.modules, ReadModuleRow);
    });
}

std::string ServicesRecord::ToJson() const {
    toml::array list;
    for (const auto& s : services) {
        toml::table row{
            {"name", s.name},
            {"privileges", TomlStrings(s.privileges)},
            {"state", s.state},
            {"pid", s.pid},
            {"result", s.result},
        };
        if (s.uid) row.insert("uid", *s.uid);
        if (s.user) row.insert("user", *s.user);
        if (s.gid) row.insert("gid", *s.gid);
        if (s.group) row.insert("group", *s.group);
        list.push_back(std::move(row));
    }
    return FormatJson(toml::table{{"version", version}, {"services", std::move(list)}});
}

Result<ServicesRecord> ServicesRecord::FromJson(std::string_view text, const std::string& file) {
    return ReadRecord<ServicesRecord>(text, file, kVersion, [](RecordFields& f, auto& r) {
        f.Get("version", r.version).Objects("services", r.services, [](RecordFields& s, Service& v) {
            s.Get("name", v.name)
                .Get("privileges", v.privileges)
                .Get("state", v.state)
                .Get("pid", v.pid)
                .Get("result", v.result)
                .Get("uid", v.uid)
                .Get("user", v.user)
                .Get("gid", v.gid)
                .Get("group", v.group);
        });
    });
}

std::string BootRecord::ToJson() const {
    return FormatJson(toml::table{
        {"version", version},
        {"state", state},
        {"stage", stage},
        {"error", error},
        {"boot_offset_ms", boot_offset_ms},
        {"wall_time", wall_time},
    });
}

Result<BootRecord> BootRecord::FromJson(std::string_view text, const std::string& file) {
    return ReadRecord<BootRecord>(text, file, kVersion, [](RecordFields& f, auto& r) {
        f.Get("version", r.version)
            .Get("state", r.state)
            .Get("stage", r.stage)
            .Get("error", r.error)
            .Get("boot_offset_ms", r.boot_offset_ms)
            .Get("wall_time", r.wall_time);
    });
}

}  // namespace peinit
