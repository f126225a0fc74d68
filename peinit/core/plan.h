#pragma once

// The boot-time module plan: which modules to load, in which order, with
// which options, and which requests cannot be satisfied and why. Pure logic: every fact about
// modules comes from a ModuleDb (KmodDb in peinit/sys/kmod.h reads a real tree through libkmod;
// tests may use a small in-memory db).
//
// Rules:
// - Every hard dependency and every soft `pre` dependency is ordered before the module, every
//   soft `post` dependency after it; a module appears once however many paths reach it.
// - Built-in modules count as loaded (status builtin, nothing to load).
// - Deny means deny: a module on any blacklist (`modprobe.blacklist=`, the hive's
//   Blacklist, modprobe.d `blacklist`, modprobe.d `install NAME /bin/false`) is never loaded,
//   whether requested directly or reached as a dependency. This is stricter than modprobe, whose
//   modprobe.d `blacklist` only hides a module from alias lookups and which still loads it by
//   name or as a dependency. A module whose hard dependency is denied or missing cannot load; it
//   is skipped and Plan::denied names the dependency, the deny source and the chain that wanted
//   it (a warning: a deny list is deliberate policy).
//   A denied or missing *soft* dependency is only left out: the module loads without it.
// - A dependency cycle (only soft dependencies can form one once depmod has run) is an error
//   naming the cycle; its members and whatever hard-depends on them are skipped.
// - Modules wanted only by skipped modules are skipped too (like modprobe, which checks the
//   whole dependency list before loading any of it).
// - Options: modprobe.d first, then `mod.param=` from the command line, then the request's own
//   options (the kernel keeps the last value of a repeated parameter).
// The result is deterministic for a given db and input.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/module_policy.h"  // NormalizeModuleName
#include "peinit/core/result.h"

namespace peinit {

// What a ModuleDb knows about one module.
struct ModuleRecord {
    std::string name;  // canonical module name
    // Absolute path of the .ko; empty for built-ins and for modules the tree does not have.
    std::string path;
    bool builtin = false;
    // False when the db names the module (e.g. in modules.dep or a modprobe.d alias) but its
    // file is not there.
    bool file_present = true;
    std::vector<std::string> hard_deps;  // every module that must be loaded first
    std::vector<std::string> soft_pre;   // resolved module names
    std::vector<std::string> soft_post;  // resolved module names
    std::string options;                 // modprobe.d options
    // Non-empty when the module's own configuration denies it (modprobe.d blacklist or an
    // install-/bin/false command): the source, e.g. "modprobe.d/x.conf:3 blacklist jbd2".
    std::string denied_by;
    // A modprobe.d install command that is not a deny idiom. peinit does not run shell
    // commands at boot; the plan reports that it is ignored.
    std::string install_command;

    bool operator==(const ModuleRecord&) const = default;
};

// The module facts the planner needs. Implementations are not required to be thread-safe.
class ModuleDb {
  public:
    virtual ~ModuleDb() = default;
    // Resolves a module name or alias to module names (several for an alias such as `crc32c`);
    // empty when nothing matches.
    virtual Result<std::vector<std::string>> Lookup(std::string_view name_or_alias) = 0;
    // Describes a module by a name returned by Lookup or listed as a dependency.
    virtual Result<ModuleRecord> Describe(std::string_view name) = 0;
    // Problems the db noticed but worked around since the last call (e.g. an index naming a
    // file that is not there); they end up in Plan::warnings.
    virtual std::vector<std::string> TakeWarnings() { return {}; }
};

// Who asked for a module, typed so that nothing parses a description back.
struct RequestOrigin {
    enum class Kind {
        kUnit,      // a unit's [[module]]; name = unit name
        kCmdline,   // modules_load= / rd.modules_load=
        kColdplug,  // a device's MODALIAS; name = device syspath
        kDemand,    // request_module(); name = the alias
        kOther,     // a tool or test; name = how to describe it
    };
    Kind kind = Kind::kOther;
    std::string name;

    static RequestOrigin Unit(std::string unit) { return {Kind::kUnit, std::move(unit)}; }
    static RequestOrigin Cmdline() { return {Kind::kCmdline, ""}; }
    static RequestOrigin Coldplug(std::string syspath) {
        return {Kind::kColdplug, std::move(syspath)};
    }
    static RequestOrigin Demand(std::string alias) { return {Kind::kDemand, std::move(alias)}; }
    static RequestOrigin Other(std::string what) { return {Kind::kOther, std::move(what)}; }

    // "unit storage", "modules_load=", "coldplug /sys/devices/...", "demand net-pf-17".
    std::string Describe() const;
    bool operator==(const RequestOrigin&) const = default;
};

// One module the boot wants.
struct ModuleRequest {
    std::string name;  // module name or alias
    RequestOrigin origin;
    std::string options;       // extra options of this request (appended last)
    // A module that does not exist for this kernel is left out without an error (units'
    // `optional = true`); a denied one is still an error.
    bool optional = false;
};

// A blacklist entry from outside the module tree: `modprobe.blacklist=`, the hive's Blacklist.
struct DenyEntry {
    std::string name;    // module name
    std::string source;  // e.g. "modprobe.blacklist=", "hive Blacklist"
};

// `mod.param=value` from the kernel command line.
struct ModuleOption {
    std::string module;
    std::string options;  // e.g. "param=value"
};

struct PlanInput {
    std::vector<ModuleRequest> requests;
    std::vector<DenyEntry> blacklist;
    std::vector<ModuleOption> options;
};

enum class ModuleStatus {
    kLoad,         // load it
    kBuiltin,      // built into the kernel: already live
    kBlacklisted,  // denied; reason holds the source
    kMissing,      // not in the tree; reason says what is missing
    kSkipped,      // cannot or need not load; reason says why
};

std::string_view StatusName(ModuleStatus status);

struct PlanEntry {
    std::string name;
    std::string path;  // absolute .ko path; empty for built-in and missing modules
    ModuleStatus status = ModuleStatus::kLoad;
    std::string reason;  // for blacklisted, missing and skipped entries
    std::vector<std::string> hard_deps;
    std::vector<std::string> soft_pre;
    std::vector<std::string> soft_post;
    std::string options;  // merged: modprobe.d, command line, request
    // Every chain that wanted this module, e.g. "unit storage -> ext4" for jbd2 (for
    // people; code uses the indices below).
    std::vector<std::string> requested_by;
    // Indices into PlanInput::requests: the requests that name this module (directly or by an
    // alias), and every request whose dependency closure reaches it (the direct ones included).
    std::vector<std::size_t> direct;
    std::vector<std::size_t> wanted_by;
    // The graph for the parallel loader: indices (into Plan::entries) of the entries that must be
    // live before this one starts. Only set for load/builtin entries, and only pointing at
    // load/builtin entries, all of which come earlier in Plan::entries.
    std::vector<std::size_t> waits_for;
    std::string ignored_install_command;  // see ModuleRecord::install_command

    bool Loadable() const {
        return status == ModuleStatus::kLoad || status == ModuleStatus::kBuiltin;
    }
};

struct Plan {
    // Load/builtin entries first, in a valid load order; then the entries that will not load,
    // in the order they were reached.
    std::vector<PlanEntry> entries;
    // One message per unsatisfied request and per cycle, e.g. "ext4: dependency jbd2 is
    // blacklisted (modprobe.d/fixture.conf:3 blacklist jbd2) via unit storage -> ext4".
    std::vector<std::string> errors;
    // Non-fatal problems reported by the db (ModuleDb::TakeWarnings).
    std::vector<std::string> warnings;
    // Requests a deny list keeps from loading, e.g. "ext4: dependency jbd2 is blacklisted (...)
    // via unit storage -> ext4": the policy at work, so a warning, not an error, wherever a
    // plan is shown (`peinit plan`, `peinit-image plan/check/build`, the boot log, `peinitctl
    // status`); the entries say `blacklisted` or `skipped`.
    std::vector<std::string> denied;

    bool ok() const { return errors.empty(); }
    const PlanEntry* Find(std::string_view name) const;
    // Index of `name` in entries, or entries.size().
    std::size_t IndexOf(std::string_view name) const;
};

// Builds the plan. Fails only when the db fails (I/O, corrupt index); unsatisfiable requests are
// reported in Plan::errors.
Result<Plan> BuildPlan(ModuleDb& db, const PlanInput& input);

}  // namespace peinit
