#include "peinit/init/services.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <string_view>
#include <utility>

#include "peinit/sys/kernel.h"
#include "peinit/sys/signals.h"

namespace peinit {

namespace {

// The uid and gid of `user` in passwd(5) text ("name:x:uid:gid:..."). The image has no NSS
// configuration to speak of, and this is the whole of what PID 1 needs from it.
std::optional<std::pair<uint32_t, uint32_t>> LookupUser(std::string_view passwd,
                                                        std::string_view user) {
    while (!passwd.empty()) {
        size_t eol = passwd.find('\n');
        std::string_view line = passwd.substr(0, eol);
        passwd = eol == std::string_view::npos ? std::string_view() : passwd.substr(eol + 1);
        std::vector<std::string_view> fields;
        for (size_t start = 0;;) {
            size_t colon = line.find(':', start);
            fields.push_back(line.substr(start, colon - start));
            if (colon == std::string_view::npos) break;
            start = colon + 1;
        }
        if (fields.size() < 4 || fields[0] != user) continue;
        try {
            return std::make_pair(static_cast<uint32_t>(std::stoul(std::string(fields[2]))),
                                  static_cast<uint32_t>(std::stoul(std::string(fields[3]))));
        } catch (...) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

}  // namespace

ServiceRunner::ServiceRunner(Kernel& kernel, const UnitSet& units, std::string passwd)
    : kernel_(kernel), passwd_(std::move(passwd)) {
    for (const Unit& unit : units.units) {
        for (const ServiceSpec& spec : unit.services) {
            by_name_[spec.name] = services_.size();
            services_.push_back({&spec});
        }
    }
}

bool ServiceRunner::Ready(const Entry& entry) const {
    for (const NameRef& dep : entry.spec->after) {
        auto it = by_name_.find(dep.name);
        if (it != by_name_.end() && services_[it->second].state != State::kExited) return false;
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
            SpawnOptions options;
            options.uid = entry.spec->uid;
            Result<pid_t> pid = Err("");
            if (entry.spec->user) {
                auto ids = LookupUser(passwd_, *entry.spec->user);
                if (ids) {
                    options.uid = ids->first;
                    options.gid = ids->second;
                }
                pid = ids ? kernel_.Spawn(entry.spec->exec, env, options)
                          : Result<pid_t>(Err("user " + *entry.spec->user +
                                              " is not in the image's /etc/passwd"));
            } else {
                pid = kernel_.Spawn(entry.spec->exec, env, options);
            }
            if (!pid) {
                spdlog::error("service {} failed to start: {}", entry.spec->name,
                              pid.error().message());
                entry.state = State::kExited;
                changed = true;
                continue;
            }
            entry.pid = *pid;
            entry.state = State::kRunning;
            spdlog::info("service {} started pid={}", entry.spec->name, *pid);
        }
    }
}

ServiceSpec::ExitAction ServiceRunner::OnExit(pid_t pid, int status) {
    for (Entry& entry : services_) {
        if (entry.state != State::kRunning || entry.pid != pid) continue;
        entry.state = State::kExited;
        spdlog::info("service {} exited {}", entry.spec->name, DescribeWaitStatus(status));
        if (entry.spec->exit_action != ServiceSpec::ExitAction::kNone) {
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
        if (entry.state != State::kExited) return false;
    }
    return true;
}

}  // namespace peinit
