#include "peinit/init/services.h"

#include <spdlog/spdlog.h>

#include "peinit/sys/kernel.h"
#include "peinit/sys/signals.h"

namespace peinit {

ServiceRunner::ServiceRunner(Kernel& kernel, const UnitSet& units) : kernel_(kernel) {
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
            auto pid = kernel_.Spawn(entry.spec->exec, env, options);
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

bool ServiceRunner::OnExit(pid_t pid, int status) {
    for (Entry& entry : services_) {
        if (entry.state != State::kRunning || entry.pid != pid) continue;
        entry.state = State::kExited;
        spdlog::info("service {} exited {}", entry.spec->name, DescribeWaitStatus(status));
        StartReady();
        return true;
    }
    return false;
}

bool ServiceRunner::AllDone() const {
    for (const Entry& entry : services_) {
        if (entry.state != State::kExited) return false;
    }
    return true;
}

}  // namespace peinit
