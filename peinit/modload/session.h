#pragma once

// The module-loading session: one per boot, opened by the module stage
// and kept in the boot context until the last stage that loads modules (coldplug, handover) is
// done; the demand-load helper opens its own, one per call. It holds what every way of loading
// a module shares:
// - the libkmod context for ROOT/lib/modules/KVER, opened once (Db);
// - the signed packages, read and signature-checked once, each member hashed at most once and
//   only when it is about to load (PackageSet, packages.h);
// - the effective policy and the command line, for plan inputs (NewInput) and demand decisions;
// and offers the one way to load a plan entry (LoadEntry), to run a plan's loads (RunPlan,
// loader.h) and to turn a plan entry and its result into an outcome (OutcomeOf).
//
// Thread-safety: LoadEntry may run on the loader's workers (Kernel seam and PackageSet only);
// everything that touches libkmod (Db, Resolve, Demand*) runs on one thread (OpenDbAhead's
// thread opens a context of its own, which nothing else touches until Db takes it).

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>


#include "peinit/core/boot_context.h"
#include "peinit/core/plan.h"
#include "peinit/core/result.h"
#include "peinit/modload/loader.h"
#include "peinit/modload/packages.h"

namespace peinit {

// The kernel's signature enforcement (module.sig_enforce), under /sys.
inline constexpr const char* kSigEnforceSysfs = "module/module/parameters/sig_enforce";

class Kernel;
class KmodDb;
namespace tpm {
class Measurement;
}

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
    // Soft dependencies the policy refused (left out; the modules asked for still load).
    std::vector<DemandRefusal> soft_refused;
    // Requested modules that were already live (or built in): nothing to do.
    std::vector<std::string> already_live;
    // The tree could not be read or planned.
    std::string error;

    // True when the alias resolved and every module it resolved to is live now.
    bool Succeeded() const;
};

// What the session did, for tests and the boot record: each costly step happens once.
struct SessionCounters {
    int db_opens = 0;          // libkmod contexts created
    int package_set_loads = 0;  // times the packages directory was read
    int load_calls = 0;        // init_module calls made
    int64_t hash_us = 0;       // CPU time spent hashing members (PackageSet::hash_time)
};

class ModloadSession {
  public:
    ModloadSession(Kernel& kernel, BootPaths paths, std::string kernel_release,
                   EffectivePolicy policy, Cmdline cmdline);
    ~ModloadSession();
    ModloadSession(const ModloadSession&) = delete;
    ModloadSession& operator=(const ModloadSession&) = delete;

    const std::string& kernel_release() const { return kernel_release_; }
    const EffectivePolicy& policy() const { return policy_; }
    Kernel& kernel() { return kernel_; }

    // The module database, opened on first use (or taken from OpenDbAhead's thread, waited
    // for); a failure is returned again on later calls.
    Result<KmodDb*> Db();
    // Opens the module database on a thread of its own for Db() to take: the module stage
    // starts it once its loads are over when its plan needed no libkmod (the image's stored
    // plan), so that it opens while the stage records them and coldplug does not wait for it.
    // Nothing when the database was opened (or tried) already or no thread can be started.
    // That thread's libkmod context is its own until Db() takes it.
    void OpenDbAhead();
    // The packages, read on first use.
    PackageSet& Packages();
    // Takes over packages being read ahead (PackagePrefetch, same release) instead of reading
    // them again: Packages() waits for them on first use. Ignored once the set is there.
    void AdoptPrefetch(std::shared_ptr<PackagePrefetch> prefetch);
    bool packages_loaded() const { return packages_ != nullptr; }
    // The trust store to check packages against instead of reading ROOT/etc/peinit/keys (PID 1
    // keeps the one it loaded for later sessions). Before the first Packages() only.
    void UseTrustStore(std::shared_ptr<const TrustStore> trust) { trust_ = std::move(trust); }
    // Read only the packages `index` names for the modules about to load
    // (PackageSet::Indexed) instead of every package. Before the first Packages() only.
    void UsePackagesIndex(std::map<std::string, std::string> index) {
        packages_index_ = std::move(index);
    }

    // A plan input with the policy's blacklist (each entry with its source) and the command
    // line's `mod.param=` options; the caller adds the requests.
    PlanInput NewInput() const;

    // From now on nothing is loaded (a module the kernel already has still counts), with
    // `reason`: SigningPolicy=enforce could not be applied. A session whose policy says enforce
    // refuses by itself when module.sig_enforce does not read true when it is opened.
    void RefuseLoads(std::string reason) { refusal_ = std::move(reason); }

    // Measured boot (peinit/tpm/measure.h): from now on LoadEntry measures every module right
    // before its bytes go to the kernel (name, SHA-256 of exactly those bytes, package, signer).
    // Null: nothing is measured.
    void MeasureWith(std::shared_ptr<tpm::Measurement> measurement) {
        measurement_ = std::move(measurement);
    }

    // The one load step: the verified bytes of the entry's module from its package,
    // decompressed when needed, handed to init_module with the entry's options. EEXIST counts
    // as loaded; a module with nothing verified to load counts as loaded when the kernel
    // already has it live. Thread-safe.
    LoadAttempt LoadEntry(const PlanEntry& entry);

    // The loader jobs of a plan's loadable entries (they come first, in load order): names,
    // built-ins, hard and soft edges.
    static std::vector<LoadJob> JobsOf(const Plan& plan, std::size_t loadable);
    // Runs the jobs with LoadEntry on `workers` workers, up to `max_workers` while loads sleep
    // (RunLoader), the members they load checked beside them in the order the loads start
    // (PackageSet::StartStream); returns once every member of the plan has been judged.
    LoaderReport RunPlan(const Plan& plan, const std::vector<LoadJob>& jobs,
                         const std::vector<LoaderUnit>& units, int workers, int max_workers,
                         std::chrono::steady_clock::time_point origin);
    // The outcome of plan entry `i` of the plan made from `input` (its loader result when it
    // was a job).
    static ModuleOutcome OutcomeOf(const Plan& plan, const PlanInput& input, std::size_t i,
                                   const LoadJob* job, const JobResult* result);

    // Demand loading (coldplug, the helper): resolve an alias like modprobe, decide each module
    // with DecideDemandLoad (blacklist in every mode, then AutoLoadPolicy), plan the allowed
    // ones with the boot planner and load them in plan order. Modules already live are left
    // alone; `origin` names the requester in the outcomes ("coldplug /sys/devices/...").
    Result<std::vector<std::string>> Resolve(std::string_view alias);
    DemandLoadReport Demand(std::string_view alias, const RequestOrigin& origin);
    DemandLoadReport DemandResolved(std::string_view alias, const std::vector<std::string>& modules,
                                    const RequestOrigin& origin);

    // Whether the kernel reports `module` live (/sys/module/NAME/initstate).
    bool IsLive(std::string_view module);

    SessionCounters counters() const;

  private:
    Kernel& kernel_;
    BootPaths paths_;
    std::string kernel_release_;
    EffectivePolicy policy_;
    Cmdline cmdline_;
    std::unique_ptr<KmodDb> db_;
    std::optional<Error> db_error_;
    std::future<Result<std::unique_ptr<KmodDb>>> db_ahead_;  // OpenDbAhead's thread
    std::unique_ptr<PackageSet> packages_;
    std::shared_ptr<PackagePrefetch> prefetch_;
    std::shared_ptr<const TrustStore> trust_;
    std::optional<std::map<std::string, std::string>> packages_index_;
    std::optional<std::string> refusal_;
    std::shared_ptr<tpm::Measurement> measurement_;
    int db_opens_ = 0;
    int package_set_loads_ = 0;
    std::atomic<int> load_calls_{0};
};

}  // namespace peinit
