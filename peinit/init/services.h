#pragma once

// One-shot services from the unit files, started by PID 1 once every boot stage has succeeded.
// A service starts when every service in its `after` has exited (whatever its status); nothing
// is restarted. PID 1's event loop reports every reaped child here.

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

#include "peinit/core/units.h"

namespace peinit {

class Kernel;

class ServiceRunner {
  public:
    // `passwd` is the image's /etc/passwd, for services with `user`.
    ServiceRunner(Kernel& kernel, const UnitSet& units, std::string passwd);

    // Starts every service whose `after` services have all exited. A service that cannot be
    // started (exec failure) counts as exited, so the ones after it still run.
    void StartReady();
    // Called for every reaped child. Returns the exit action of the service that exited
    // (kNone too for children that are not ours: orphans PID 1 inherited).
    ServiceSpec::ExitAction OnExit(pid_t pid, int status);
    bool AllDone() const;
    size_t size() const { return services_.size(); }

  private:
    enum class State { kWaiting, kRunning, kExited };
    struct Entry {
        const ServiceSpec* spec;
        State state = State::kWaiting;
        pid_t pid = -1;
    };
    bool Ready(const Entry& entry) const;

    Kernel& kernel_;
    std::string passwd_;
    std::vector<Entry> services_;
    std::map<std::string, size_t, std::less<>> by_name_;
};

}  // namespace peinit
