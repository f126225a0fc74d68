#pragma once

// DemandLoader: loads the module(s) an alias resolves to, on demand, under the effective policy.
// Shared by the demand-load helper (`peinit-modprobe`, R-15) and the coldplug stage, so
// both resolve, decide and load in exactly one way:
//   1. resolve the alias with libkmod against ROOT/lib/modules/KVER (like modprobe),
//   2. decide each resolved module with DecideDemandLoad (peinit/core/demand_load.h): blacklist
//      in every mode, then AutoLoadPolicy,
//   3. plan the allowed ones with the boot planner (dependencies first, modprobe.d denials and
//      blacklisted dependencies refused, options from modprobe.d and the command line),
//   4. load each planned module, in plan order, from the verified bytes of a verified signed
//      package (the module stage's PackageSet, R-10) with init_module; EEXIST counts as loaded.
//      A module no verified package holds is not loaded (fail closed).
// Not thread-safe (libkmod): one DemandLoader per thread. Logs nothing: callers log the report.

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/demand_load.h"
#include "peinit/core/plan.h"
#include "peinit/core/result.h"
#include "peinit/sys/kmod.h"
#include "stages/modules/packages.h"

namespace peinit {

class Kernel;

// One module the policy refused.
struct DemandRefusal {
    std::string module;
    std::string reason;  // DemandDecision::reason or the planner's deny reason
};

struct DemandLoadReport {
    std::string alias;
    // What the alias resolved to (empty: no module provides it; modprobe -q is then silent).
    std::vector<std::string> resolved;
    // Every module attempted, refused or skipped (modules already live are left out).
    std::vector<ModuleOutcome> outcomes;
    std::vector<DemandRefusal> refused;
    // Requested modules that were already live (or built in): nothing to do.
    std::vector<std::string> already_live;
    // The tree could not be read or planned.
    std::string error;

    // True when the alias resolved and every module it resolved to is live now.
    bool Succeeded() const;
};

class DemandLoader {
  public:
    // Opens ROOT/lib/modules/KVER. `policy` and `cmdline` are copied.
    static Result<std::unique_ptr<DemandLoader>> Open(const BootPaths& paths,
                                                      const std::string& kernel_release,
                                                      const EffectivePolicy& policy,
                                                      const Cmdline& cmdline);

    // The module names `alias` resolves to (empty when none).
    Result<std::vector<std::string>> Resolve(std::string_view alias);

    // Resolves `alias` and loads what the policy allows. `requested_by` names the requester in
    // the outcomes ("demand net-pf-17", "coldplug /sys/devices/...").
    DemandLoadReport Load(Kernel& kernel, std::string_view alias, const std::string& requested_by);
    // The same for modules already resolved from `alias` (coldplug filters them first).
    DemandLoadReport LoadResolved(Kernel& kernel, std::string_view alias,
                                  const std::vector<std::string>& modules,
                                  const std::string& requested_by);

    // Whether the kernel reports `module` live (/sys/module/NAME/initstate).
    static bool IsLive(Kernel& kernel, std::string_view module);

    const PackageSet* packages() const { return packages_ ? &*packages_ : nullptr; }

  private:
    DemandLoader() = default;
    const PackageSet& Packages();

    BootPaths paths_;
    std::string kernel_release_;
    EffectivePolicy policy_;
    Cmdline cmdline_;
    std::unique_ptr<KmodDb> db_;
    // Read and verified on the first load only (the helper often has nothing to load).
    std::optional<PackageSet> packages_;
};

}  // namespace peinit
