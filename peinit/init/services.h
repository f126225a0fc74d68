#pragma once

// One-shot services from the unit files, started by PID 1 once every boot stage has succeeded.
// A service starts when every service in its `after` has exited (whatever its status); nothing
// is restarted. PID 1's event loop reports every reaped child here.
//
// Least privilege (R-28, SECURITY.md): a service starts without the capabilities of every
// privilege its unit does not grant (`privileges`, units/SCHEMA.md) in its bounding,
// inheritable and ambient sets: SeLoadDriverPrivilege (CAP_SYS_MODULE), SeTcbPrivilege
// (CAP_SYS_ADMIN and what reaches kernel memory: CAP_SYS_RAWIO, CAP_BPF, CAP_PERFMON,
// CAP_SYSLOG), SeDebugPrivilege (CAP_SYS_PTRACE), SeShutdownPrivilege (CAP_SYS_BOOT); with
// no_new_privs (unless the unit says `no_new_privileges = false`); as the unit's user/uid and
// group/gid (the image's /etc/passwd and /etc/group). A service whose capabilities, ids or
// no_new_privs cannot be set does not start (fail closed). Which service holds which
// privilege, and each service's state, is recorded in /run/peinit/services.json (version 1)
// for `peinitctl status`.

#include <sys/types.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/core/units.h"
#include "peinit/sys/kernel.h"

namespace peinit {

class Kernel;

// The capabilities removed from a service's bounding set: those of every privilege its unit
// does not grant, in kAllPrivileges order.
std::vector<int> CapabilitiesToDrop(const ServiceSpec& spec);

class ServiceRunner {
  public:
    // `passwd` is the image's /etc/passwd, for services with `user`, `group` its /etc/group,
    // for services with `group`. `record_path` is where the services record is written ("" for
    // none).
    ServiceRunner(Kernel& kernel, const UnitSet& units, std::string passwd,
                  std::string record_path = "", std::string group = "");
    // How `spec` is started: ids, capabilities dropped, no_new_privs. An error names a user or
    // group the image does not have.
    Result<SpawnOptions> OptionsFor(const ServiceSpec& spec) const;

    // Starts every service whose `after` services have all exited. A service that cannot be
    // started (exec failure) counts as exited, so the ones after it still run.
    void StartReady();
    // Called for every reaped child. Returns the exit action of the service that exited
    // (kNone too for children that are not ours: orphans PID 1 inherited).
    ServiceSpec::ExitAction OnExit(pid_t pid, int status);
    bool AllDone() const;
    size_t size() const { return services_.size(); }

  private:
    enum class State { kWaiting, kRunning, kExited, kFailed };
    struct Entry {
        const ServiceSpec* spec;
        State state = State::kWaiting;
        pid_t pid = -1;
        std::string result;  // "exit 0", "signal 9 (Killed)", or why it did not start
    };
    bool Ready(const Entry& entry) const;
    static std::string_view StateName(State state);
    void WriteRecord() const;

    Kernel& kernel_;
    std::string passwd_;
    std::string group_;
    std::string record_path_;
    std::vector<Entry> services_;
    std::map<std::string, size_t, std::less<>> by_name_;
};

}  // namespace peinit
