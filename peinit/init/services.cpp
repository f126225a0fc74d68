#include "peinit/init/services.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>

#include "peinit/sys/kernel.h"
#include "peinit/record/stages.h"
#include "peinit/sys/record.h"
#include "peinit/sys/signals.h"

namespace peinit {

namespace {

// The fields of the line of a colon-separated database (passwd(5), group(5)) whose first field
// is `name` and that has at least `min_fields` fields.
std::optional<std::vector<std::string_view>> FindEntry(std::string_view db, std::string_view name,
                                                       size_t min_fields) {
    while (!db.empty()) {
        size_t eol = db.find('\n');
        std::string_view line = db.substr(0, eol);
        db = eol == std::string_view::npos ? std::string_view() : db.substr(eol + 1);
        std::vector<std::string_view> fields;
        for (size_t start = 0;;) {
            size_t colon = line.find(':', start);
            fields.push_back(line.substr(start, colon - start));
            if (colon == std::string_view::npos) break;
            start = colon + 1;
        }
        if (fields.size() >= min_fields && fields[0] == name) return fields;
    }
    return std::nullopt;
}

std::optional<uint32_t> ParseId(std::string_view text) {
    if (text.empty() || text.size() > 10) return std::nullopt;
    uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v >= 4294967295ULL) return std::nullopt;
    return static_cast<uint32_t>(v);
}

// The gid of `group` in group(5) text ("name:x:gid:members").
std::optional<uint32_t> LookupGroup(std::string_view group_db, std::string_view group) {
    auto fields = FindEntry(group_db, group, 3);
    return fields ? ParseId((*fields)[2]) : std::nullopt;
}

// The uid and gid of `user` in passwd(5) text ("name:x:uid:gid:..."). The image has no NSS
// configuration to speak of, and this is the whole of what PID 1 needs from it.
std::optional<std::pair<uint32_t, uint32_t>> LookupUser(std::string_view passwd,
                                                        std::string_view user) {
    auto fields = FindEntry(passwd, user, 4);
    if (!fields) return std::nullopt;
    auto uid = ParseId((*fields)[2]);
    auto gid = ParseId((*fields)[3]);
    if (!uid || !gid) return std::nullopt;
    return std::make_pair(*uid, *gid);
}

std::string PrivilegeList(const std::vector<Privilege>& privileges) {
    std::string out;
    for (Privilege p : privileges) out += (out.empty() ? "" : ",") + std::string(PrivilegeName(p));
    return out.empty() ? "none" : out;
}

}  // namespace

std::vector<int> CapabilitiesToDrop(const ServiceSpec& spec) {
    std::vector<int> caps;
    for (Privilege p : kAllPrivileges) {
        if (std::find(spec.privileges.begin(), spec.privileges.end(), p) == spec.privileges.end()) {
            for (int cap : PrivilegeCapabilities(p)) caps.push_back(cap);
        }
    }
    return caps;
}

Result<SpawnOptions> ServiceRunner::OptionsFor(const ServiceSpec& spec) const {
    SpawnOptions options;
    options.uid = spec.uid;
    options.gid = spec.gid;
    if (spec.user) {
        auto ids = LookupUser(passwd_, *spec.user);
        if (!ids) return Err("user " + *spec.user + " is not in the image's /etc/passwd");
        options.uid = ids->first;
        if (!spec.gid && !spec.group) options.gid = ids->second;
    }
    if (spec.group) {
        auto gid = LookupGroup(group_, *spec.group);
        if (!gid) return Err("group " + *spec.group + " is not in the image's /etc/group");
        options.gid = *gid;
    }
    options.drop_capabilities = CapabilitiesToDrop(spec);
    options.no_new_privs = spec.no_new_privileges;
    return options;
}

ServiceRunner::ServiceRunner(Kernel& kernel, const UnitSet& units, std::string passwd,
                             std::string record_path, std::string group)
    : kernel_(kernel),
      passwd_(std::move(passwd)),
      group_(std::move(group)),
      record_path_(std::move(record_path)) {
    for (const Unit& unit : units.units) {
        for (const ServiceSpec& spec : unit.services) {
            by_name_[spec.name] = services_.size();
            services_.push_back({&spec, State::kWaiting, -1, ""});
        }
    }
}

bool ServiceRunner::Ready(const Entry& entry) const {
    for (const NameRef& dep : entry.spec->after) {
        auto it = by_name_.find(dep.name);
        if (it == by_name_.end()) continue;
        State state = services_[it->second].state;
        if (state != State::kExited && state != State::kFailed) return false;
    }
    return true;
}

void ServiceRunner::StartReady() {
    // Starting one service can make others ready only when it fails to start, so loop until
    // nothing changes.
    bool changed = true;
    while (changed) {
        changed = false;
        for (Entry& entry : services_) {
            if (entry.state != State::kWaiting || !Ready(entry)) continue;
            std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/",
                                            "TERM=linux"};
            for (const auto& [name, value] : entry.spec->environment) {
                env.push_back(name + "=" + value);
            }
            auto options = OptionsFor(*entry.spec);
            Result<pid_t> pid = options ? kernel_.Spawn(entry.spec->exec, env, *options)
                                        : Result<pid_t>(options.error());
            if (!pid) {
                spdlog::error("service {} failed to start: {}", entry.spec->name,
                              pid.error().message());
                entry.state = State::kFailed;
                entry.result = "not started: " + pid.error().message();
                changed = true;
                continue;
            }
            entry.pid = *pid;
            entry.state = State::kRunning;
            spdlog::info("service {} started pid={} privileges={}", entry.spec->name, *pid,
                         PrivilegeList(entry.spec->privileges));
        }
    }
    WriteRecord();
}

std::string_view ServiceRunner::StateName(State state) {
    switch (state) {
        case State::kWaiting:
            return "waiting";
        case State::kRunning:
            return "running";
        case State::kExited:
            return "exited";
        case State::kFailed:
            return "failed";
    }
    return "?";
}

void ServiceRunner::WriteRecord() const {
    if (record_path_.empty()) return;
    ServicesRecord record;
    for (const Entry& entry : services_) {
        ServicesRecord::Service row;
        row.name = entry.spec->name;
        for (Privilege p : entry.spec->privileges) row.privileges.emplace_back(PrivilegeName(p));
        row.state = std::string(StateName(entry.state));
        row.pid = entry.pid;
        row.result = entry.result;
        if (entry.spec->uid) row.uid = *entry.spec->uid;
        row.user = entry.spec->user;
        if (entry.spec->gid) row.gid = *entry.spec->gid;
        row.group = entry.spec->group;
        record.services.push_back(std::move(row));
    }
    if (auto r = WriteFileAtomically(record_path_, record.ToJson()); !r) {
        spdlog::warn("services: cannot write {}: {}", record_path_, r.error().message());
    }
}

ServiceSpec::ExitAction ServiceRunner::OnExit(pid_t pid, int status) {
    for (Entry& entry : services_) {
        if (entry.state != State::kRunning || entry.pid != pid) continue;
        entry.state = State::kExited;
        entry.result = DescribeWaitStatus(status);
        spdlog::info("service {} exited {}", entry.spec->name, entry.result);
        if (entry.spec->exit_action != ServiceSpec::ExitAction::kNone) {
            WriteRecord();
            return entry.spec->exit_action;
        }
        StartReady();
        return ServiceSpec::ExitAction::kNone;
    }
    spdlog::debug("reaped pid {} ({})", pid, DescribeWaitStatus(status));
    return ServiceSpec::ExitAction::kNone;
}

bool ServiceRunner::AllDone() const {
    for (const Entry& entry : services_) {
        if (entry.state != State::kExited && entry.state != State::kFailed) return false;
    }
    return true;
}

}  // namespace peinit
