#pragma once

// Unit files: which modules the boot-time module stage loads, how they are ordered, and
// the services later stages start. The schema is documented in units/SCHEMA.md; this file is
// its only implementation, shared by peinit at boot, `peinit check` and the image builder.
//
// Two formats map onto one in-memory model:
//   NAME.toml  a peinit unit (toml++),
//   NAME.conf  a modules-load.d list (one module per line, '#'/';' comments).
//
// Parsing is pure (text in, unit out) and collects every problem as a ConfigError instead of
// stopping at the first, so `peinit check` can report them all. A unit with any error is not
// used at all: nothing from it is half-applied.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "peinit/core/config_error.h"

namespace peinit {

// A reference to another unit or service by name, with the line it was written on (for
// "unknown unit" and cycle errors found when the units are linked).
struct NameRef {
    std::string name;
    int line = 0;
    bool operator==(const NameRef&) const = default;
};

struct ModuleSpec {
    // Module name or alias, as written (the resolver normalises and resolves it).
    std::string name;
    // Kernel module-parameter syntax ("a=1 b=\"x y\""), already validated; "" for none.
    std::string options;
    // A module that does not exist for this kernel is skipped without an error.
    bool optional = false;
    int line = 0;
    // Load if the hardware is present: when the module's init finds no device (ENODEV, ENXIO)
    // the outcome is "no-device", reported as such and not a problem.
    bool if_hardware_present = false;
};

// A privilege a service may be granted (the Peios names of the KACS privilege catalogue). peinit
// maps each to the Linux capability that stands for it on our kernel (spec §3) and keeps it in
// a service's capability bounding set only when the service's unit grants it.
// A privilege the unit does not grant has all its capabilities dropped (R-28, SECURITY.md).
enum class Privilege {
    kLoadDriver,  // "SeLoadDriverPrivilege" == CAP_SYS_MODULE: load and unload modules
    // "SeTcbPrivilege": part of the trusted computing base: CAP_SYS_ADMIN (among others
    // module_lockdown(LOCK)) and the capabilities that reach kernel memory or the kernel's own
    // secrets: CAP_SYS_RAWIO (/dev/mem, /dev/port, ioperm), CAP_BPF and CAP_PERFMON (BPF
    // programs and perf events that read kernel memory), CAP_SYSLOG (kernel addresses).
    kTcb,
    kDebug,     // "SeDebugPrivilege" == CAP_SYS_PTRACE: ptrace and process_vm_writev of any
                // process, PID 1 and the kernel's helpers included
    kShutdown,  // "SeShutdownPrivilege" == CAP_SYS_BOOT: reboot(2) and kexec_load(2) (a new
                // kernel)
};
// Every privilege, in the order status and logs list them.
inline constexpr Privilege kAllPrivileges[] = {Privilege::kLoadDriver, Privilege::kTcb,
                                               Privilege::kDebug, Privilege::kShutdown};
// "SeLoadDriverPrivilege", "SeTcbPrivilege".
std::string_view PrivilegeName(Privilege privilege);
// The privilege named exactly `name` (case-sensitive, as written in units and status).
std::optional<Privilege> ParsePrivilege(std::string_view name);
// The Linux capabilities standing for `privilege` (CAP_* numbers, the first is its main one).
std::vector<int> PrivilegeCapabilities(Privilege privilege);

struct ServiceSpec {
    std::string name;               // unique across all units
    std::vector<std::string> exec;  // argv; exec[0] is an absolute path
    std::optional<std::string> user;
    std::optional<uint32_t> uid;
    // The primary group, by name (the image's /etc/group) or number; unset: the user's group
    // from /etc/passwd (`user`), the uid's number (`uid`), or root's.
    std::optional<std::string> group;
    std::optional<uint32_t> gid;
    // prctl(PR_SET_NO_NEW_PRIVS) before the exec: set-uid, set-gid and file capabilities do
    // not raise what the program holds. `no_new_privileges = false` turns it off.
    bool no_new_privileges = true;
    // Sorted by variable name (toml++ tables are ordered), "NAME" -> "value".
    std::vector<std::pair<std::string, std::string>> environment;
    std::vector<NameRef> after;  // services this one starts after
    // Privileges the unit grants (`privileges = [...]`), each once, in kAllPrivileges order.
    // Every other privilege's capability is dropped from the service's bounding set.
    std::vector<Privilege> privileges;
    // What PID 1 does when this service exits, whatever its status (systemd's
    // SuccessAction/FailureAction in one): images whose job ends with a service (tests, the
    // demo) power off by themselves.
    enum class ExitAction { kNone, kPoweroff, kReboot };
    ExitAction exit_action = ExitAction::kNone;
    int line = 0;
};

enum class UnitFormat { kToml, kModulesLoad };

struct Unit {
    std::string name;  // the file stem: units/net.toml -> "net"
    std::string path;  // as given to the parser, used in every message
    UnitFormat format = UnitFormat::kToml;
    std::string description;
    // Units whose modules must all have been attempted before this unit's modules start.
    std::vector<NameRef> after;
    // Barrier: this unit's modules load one at a time, in the listed order, and nothing else
    // loads while they do (for hardware that misbehaves when probed concurrently).
    bool sequential = false;
    std::vector<ModuleSpec> modules;
    std::vector<ServiceSpec> services;
    // Read with errors (only ParseUnits passes such units on): LinkUnits still checks its name,
    // services and references, then drops it.
    bool broken = false;
};

// A linked, validated set of units in load order: every unit comes after the units in its
// `after`, ties broken by name, so the order is deterministic.
struct UnitSet {
    std::vector<Unit> units;

    const Unit* Find(std::string_view name) const;
    const ServiceSpec* FindService(std::string_view name) const;
    size_t ModuleCount() const;
    size_t ServiceCount() const;
};

// True for file names the unit loader reads: "*.toml" and "*.conf", not hidden.
bool IsUnitFileName(std::string_view file_name);

// The unit name for a path: its file name without the extension.
std::string UnitNameFromPath(std::string_view path);

// A unit or service name: 1..64 characters of [A-Za-z0-9_.@-].
bool IsValidUnitName(std::string_view name);

// Parses a TOML unit. Returns nullopt (and appends to `errors`) when it has any error.
std::optional<Unit> ParseTomlUnit(const std::string& path, std::string_view text,
                                  ConfigErrors& errors);

// Parses a modules-load.d list. An empty list is valid (Debian ships an all-comment
// /etc/modules); duplicates are loaded once, as systemd-modules-load does.
std::optional<Unit> ParseModulesLoadList(const std::string& path, std::string_view text,
                                         ConfigErrors& errors);

// Dispatches on the extension (.toml or .conf).
std::optional<Unit> ParseUnitFile(const std::string& path, std::string_view text,
                                  ConfigErrors& errors);

// A unit file's path (as used in messages) and text.
struct UnitSource {
    std::string path;
    std::string text;
};

// Parses and links unit files: what `peinit check`, peinit at boot and the image builder run.
// Every problem of every file is reported in one pass: a unit with errors is not used, but its
// name, services and references still take part in the link checks, so an unknown `after`
// target is reported together with the unit's other mistakes.
UnitSet ParseUnits(const std::vector<UnitSource>& files, ConfigErrors& errors);

// Links parsed units: rejects duplicate unit and service names, conflicting options for one
// module, unknown `after` targets and ordering cycles, and orders the rest. A unit with an
// error is dropped, and so is every unit ordered after a dropped one (with its own error),
// so the result only holds units whose whole ordering is known.
UnitSet LinkUnits(std::vector<Unit> units, ConfigErrors& errors);

}  // namespace peinit
