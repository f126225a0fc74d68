#include "stages/modules/modules.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "peinit/core/boot_plan.h"
#include "peinit/core/plan.h"
#include "peinit/core/text.h"
#include "peinit/core/stored_plan.h"
#include "peinit/modload/session.h"
#include "peinit/record/modules.h"
#include "peinit/sys/kernel.h"
#include "peinit/sys/kernel_release.h"
#include "peinit/sys/kmod.h"
#include "peinit/sys/record.h"
#include "peinit/sys/stored_plan_file.h"
#include "peinit/sys/uevent.h"
#include "stages/root/root.h"
#include "stages/stage.h"

namespace peinit {

namespace {

using Clock = std::chrono::steady_clock;
using Status = ModuleOutcome::Status;

constexpr const char* kSigEnforce = kSigEnforceSysfs;
constexpr int kMaxDefaultWorkers = 8;
constexpr int kMaxAdaptiveWorkers = 16;
constexpr int kNoUnit = std::numeric_limits<int>::max();

struct SigningState {
    std::string sig_enforce;  // as read back ("Y", "N"), "" when unreadable
    bool applied = true;      // false: enforce was asked for and the kernel does not enforce
    std::string error;
};

// R-14, before any load: enforce tightens the kernel (one-way); warn leaves the build floor.
SigningState ApplySigningPolicy(BootContext& ctx) {
    SigningState state;
    bool enforce = ctx.policy.signing.value == SigningPolicy::kEnforce;
    Result<void> wrote = Ok();
    if (enforce) wrote = ctx.kernel.WriteSysfs(kSigEnforce, "1");
    auto read = ctx.kernel.ReadSysfs(kSigEnforce);
    if (read) state.sig_enforce = *read;
    if (!enforce) return state;
    bool on = read && ParseKernelBool(*read).value_or(false);
    if (on) return state;
    state.applied = false;
    state.error = "SigningPolicy=enforce could not be applied (" +
                  (wrote ? std::string("write ok") : "write: " + wrote.error().message()) + ", " +
                  (read ? "sig_enforce reads " + *read : "read: " + read.error().message()) +
                  "): loading nothing";
    return state;
}

// The boot's requests, from the one collector (peinit/core/boot_plan.h).
using Requests = BootPlanInput;

// Which unit each loadable entry belongs to for `after` and barriers: the earliest unit (in
// load order) that wants it directly or through any module that waits for it. Taking the
// minimum over dependents means a module's dependencies never belong to a later unit, so unit
// gates can never wait on their own dependencies.
std::vector<int> OwningUnits(const Plan& plan, std::size_t loadable, const Requests& requests) {
    std::vector<int> owner(loadable, kNoUnit);
    for (std::size_t i = 0; i < loadable; ++i) {
        for (std::size_t r : plan.entries[i].wanted_by) {
            if (requests.unit_of[r] >= 0) owner[i] = std::min(owner[i], requests.unit_of[r]);
        }
    }
    for (std::size_t k = loadable; k-- > 0;) {
        for (std::size_t d : plan.entries[k].waits_for) {
            if (d < loadable) owner[d] = std::min(owner[d], owner[k]);
        }
    }
    for (int& o : owner) {
        if (o == kNoUnit) o = -1;
    }
    return owner;
}

// A sequential unit's jobs in load order: each listed module (in the unit's order) after the
// unit's own jobs it waits for, then whatever else the unit owns, in plan order.
std::vector<std::size_t> UnitSequence(const Plan& plan, std::size_t loadable,
                                      const std::vector<int>& owner, int u,
                                      const Requests& requests) {
    std::vector<std::size_t> seq;
    std::vector<bool> placed(loadable, false);
    auto visit = [&](auto&& self, std::size_t j) -> void {
        if (placed[j] || owner[j] != u) return;
        placed[j] = true;
        for (std::size_t d : plan.entries[j].waits_for) {
            if (d < loadable) self(self, d);
        }
        seq.push_back(j);
    };
    // The unit's requests are in its [[module]] order.
    for (std::size_t r = 0; r < requests.unit_of.size(); ++r) {
        if (requests.unit_of[r] != u) continue;
        for (std::size_t j = 0; j < loadable; ++j) {
            const auto& direct = plan.entries[j].direct;
            if (std::find(direct.begin(), direct.end(), r) != direct.end()) visit(visit, j);
        }
    }
    for (std::size_t j = 0; j < loadable; ++j) visit(visit, j);
    return seq;
}

// The unit that asked for an entry directly ("" for dependencies and the command line).
std::string DirectUnit(const PlanEntry& e, const Requests& requests) {
    for (std::size_t r : e.direct) {
        const RequestOrigin& origin = requests.input.requests[r].origin;
        if (origin.kind == RequestOrigin::Kind::kUnit) return origin.name;
    }
    return "";
}

// A module whose init found no device, asked for directly and only by units that load it "if
// the hardware is present": no-device, not a failure (issue 16; systemd-modules-load, too,
// takes ENODEV as benign).
bool IsAbsentHardware(const PlanEntry& e, const ModuleOutcome& o, const Requests& requests) {
    if (o.status != ModuleOutcome::Status::kFailed || (o.error != ENODEV && o.error != ENXIO) ||
        e.direct.empty()) {
        return false;
    }
    return std::all_of(e.direct.begin(), e.direct.end(),
                       [&](std::size_t r) { return requests.if_hardware_present[r]; });
}

bool IsRequiredMissing(const Plan& plan, const std::string& name) {
    const std::string prefix = name + ": missing";
    return std::any_of(plan.errors.begin(), plan.errors.end(),
                       [&](const std::string& e) { return e.starts_with(prefix); });
}

// The plan from the image's signed stored plan (peinit/core/stored_plan.h) when it verifies, is
// for this kernel and answers every question this boot's input asks (the running command line's
// blacklist and options apply as they would with libkmod); otherwise nullopt, and the log and
// `source` ("boot: WHY") say why the stage plans with libkmod. Fail-closed: nothing is planned
// from a stored plan that did not verify.
std::optional<Plan> PlanFromStoredPlan(const BootContext& ctx, const PlanInput& input,
                                       std::string& source) {
    auto fallback = [&](const std::string& why, bool none) -> std::optional<Plan> {
        source = "boot: " + why;
        if (none) {
            spdlog::info("modules: no stored plan ({}): planning at boot with libkmod", why);
        } else {
            spdlog::warn("modules: stored plan not used ({}): planning at boot with libkmod", why);
        }
        return std::nullopt;
    };
    auto stored = ReadStoredPlan(ctx.paths, ctx.kernel_release);
    if (!stored) return fallback(stored.error().message(), stored.error().code() == ENOENT);
    StoredModuleDb db(stored->plan.facts, ctx.paths.root.string());
    auto built = BuildPlan(db, input);
    if (!built) return fallback(std::string(kStoredPlanPath) + ": " + built.error().message(), false);
    source = "stored";
    spdlog::info("modules: planned from the image's stored plan {} (kernel {}, signer {}), "
                 "without libkmod",
                 kStoredPlanPath, stored->plan.kernel_release, stored->signer.substr(0, 16));
    return std::move(*built);
}

// Where the stage's time went, from its start (ms): reading and checking the packages'
// signatures, planning, hashing the members the plan loads (each hash's duration summed over
// the threads that hashed, beside the loads), until the first load started, and from the first
// load's start to the last one's end.
using Phases = ModulesRecord::Phases;
using Summary = ModulesRecord::Summary;

void WriteRecord(const BootContext& ctx, const std::string& wall_time, int64_t boot_offset_ms,
                 int workers, PolicySource workers_source, int threads, int64_t total_ms,
                 const SigningState& signing, const Summary& summary, const PackageSet* packages,
                 const Plan* plan, const std::vector<std::string>& warnings,
                 const Phases& phases, const std::string& plan_source,
                 const std::string& error) {
    ModulesRecord record;
    record.wall_time = wall_time;
    record.boot_offset_ms = boot_offset_ms;
    record.kernel_release = ctx.kernel_release;
    record.plan_source = plan_source;
    record.workers = workers;
    record.workers_source = std::string(ToString(workers_source));
    record.threads = threads;
    record.total_ms = total_ms;
    record.signing = {std::string(ToString(ctx.policy.signing.value)),
                      std::string(ToString(ctx.policy.signing.source)), signing.sig_enforce,
                      signing.error, signing.applied};
    record.summary = summary;
    record.phases = phases;
    if (packages != nullptr) {
        for (const auto& p : packages->reports()) {
            record.packages.push_back({p.file, p.name, p.version, p.signer, p.reason, p.verified,
                                       p.modules, static_cast<int64_t>(p.hashed), p.released,
                                       p.in_place, p.hashed_bytes});
        }
    }
    for (const auto& o : ctx.module_outcomes) record.modules.push_back(ModuleRow::From(o));
    if (plan != nullptr) record.plan_errors = plan->errors;
    record.warnings = warnings;
    record.error = error;
    std::string path = ctx.paths.Under(ModulesRecord::kPath).string();
    if (auto r = WriteFileAtomically(path, record.ToJson()); !r) {
        spdlog::error("modules: cannot write the boot record {}: {}", path, r.error().message());
    }
}

// The loader's view of the units: each one's transitive `after` closure (units are in `after`
// order, so earlier closures are complete) and, for a sequential unit, its load sequence.
std::vector<LoaderUnit> LoaderUnitsOf(const std::vector<Unit>& units, const Plan& plan,
                                      std::size_t loadable, const std::vector<int>& owner,
                                      const Requests& requests) {
    std::vector<LoaderUnit> loader_units(units.size());
    for (std::size_t u = 0; u < units.size(); ++u) {
        std::set<int> closure;
        for (const auto& ref : units[u].after) {
            for (std::size_t v = 0; v < u; ++v) {
                if (units[v].name != ref.name) continue;
                closure.insert(static_cast<int>(v));
                closure.insert(loader_units[v].after.begin(), loader_units[v].after.end());
            }
        }
        loader_units[u].after.assign(closure.begin(), closure.end());
        if (units[u].sequential) {
            loader_units[u].sequence =
                UnitSequence(plan, loadable, owner, static_cast<int>(u), requests);
        }
    }
    return loader_units;
}

// When the first load started and how long from then until the last one ended.
void SetLoadSpan(const std::vector<LoadJob>& jobs, const LoaderReport& report, Phases& phases) {
    std::optional<std::chrono::microseconds> first, last;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        if (jobs[i].builtin || report.results[i].state == JobResult::State::kSkipped) continue;
        const auto& r = report.results[i];
        first = first ? std::min(*first, r.start) : r.start;
        last = last ? std::max(*last, r.start + r.duration) : r.start + r.duration;
    }
    if (first) {
        phases.first_load_ms = first->count() / 1000;
        phases.loads_ms = (*last - *first).count() / 1000;
    }
}

void LogPackages(const std::vector<PackageReport>& reports) {
    for (const auto& p : reports) {
        if (p.verified) {
            spdlog::info("package {} verified: {} {} signer={} modules={} hashed={} ({} KiB) "
                         "read={}",
                         p.file, p.name, p.version, p.signer.substr(0, 16), p.modules.size(),
                         p.hashed, p.hashed_bytes / 1024, p.in_place ? "in-place" : "copied");
        } else if (p.released.empty()) {
            spdlog::error("package {} rejected: {}", p.file, p.reason);
        } else {
            // Found while the loads ran (PACKAGE.md): what was loaded matched, nothing more was.
            spdlog::error("package {} rejected: {}; already loaded or loading from it: {}; nothing "
                          "more loads from it",
                          p.file, p.reason, Join(p.released, ", "));
        }
    }
}

// The console line for a module that did not simply load.
void LogOutcome(const Plan& plan, const PlanEntry& e, const ModuleOutcome& o) {
    const std::string wanted = Join(e.requested_by, "; ");
    switch (o.status) {
        case Status::kNoDevice:
            spdlog::info("module {}: no device present, not loaded (if_hardware_present), "
                         "wanted by {}",
                         e.name, wanted);
            break;
        case Status::kFailed:
            spdlog::error("module {} failed: {}, wanted by {}", e.name, o.reason, wanted);
            break;
        case Status::kSkipped:
            spdlog::warn("module {} skipped: {}, wanted by {}", e.name, o.reason, wanted);
            break;
        case Status::kBlacklisted:
            spdlog::warn("module {} blacklisted ({}): wanted by {}", e.name, e.reason, wanted);
            break;
        case Status::kMissing:
            if (IsRequiredMissing(plan, e.name)) {
                spdlog::error("module {} missing: {}, wanted by {}", e.name, e.reason, wanted);
            } else {
                spdlog::info("module {} missing (optional): {}, ignoring", e.name, e.reason);
            }
            break;
        default:
            break;
    }
}

void Count(const Plan& plan, const PlanEntry& e, const ModuleOutcome& o, Summary& summary) {
    switch (o.status) {
        case Status::kLoaded:
        case Status::kAlreadyLoaded:
        case Status::kBuiltin:
            ++summary.ok;
            break;
        case Status::kFailed:
            ++summary.failed;
            break;
        case Status::kBlacklisted:
            ++summary.blacklisted;
            break;
        case Status::kSkipped:
            ++summary.skipped;
            break;
        case Status::kMissing:
            ++(IsRequiredMissing(plan, e.name) ? summary.failed : summary.skipped);
            break;
        case Status::kNoDevice:
            ++summary.no_device;
            break;
    }
}

}  // namespace

int DefaultModuleWorkers() {
    unsigned int cpus = std::thread::hardware_concurrency();
    return std::clamp(static_cast<int>(cpus), 1, kMaxDefaultWorkers);
}

namespace {

// Coldplug's enumeration of sysfs, made beside the loads (background work "device-scan",
// stages/stage.h): coldplug takes it; joined without it, a failed scan is reported.
void StartDeviceScan(BootContext& ctx) {
    ctx.background.Start<DeviceScan>(
        std::string(kDeviceScan),
        std::shared_ptr<DeviceScan>(DeviceScan::Start(ctx.paths.Under("/sys"))),
        [](DeviceScan& scan) -> Result<void> {
            DeviceScan::Found found = scan.Take();
            if (!found.seqnum) return found.seqnum.error();
            if (!found.devices) return found.devices.error();
            return Ok();
        });
}

}  // namespace

Result<void> RunModules(BootContext& ctx) {
    const auto origin = Clock::now();
    // However this stage ends, the boot-time modules are in afterwards: the root stage's thread
    // may mount the real root (stages/root/root.h). RunStages would open it after this stage
    // (stages/stage.h, BootBackground); here it opens as soon as the loads are over, before
    // their outcomes are logged and recorded (or when the stage ends early).
    struct OpenRootGate {
        BootContext& ctx;
        ~OpenRootGate() { ctx.background.Open(kRootPreparation); }
    } open_root_gate{ctx};
    const std::string wall_time = WallTimeUtc();
    const int64_t boot_offset_ms = BootOffsetMs();
    ctx.module_outcomes.clear();

    const int workers = ctx.policy.workers.value.value_or(DefaultModuleWorkers());
    const PolicySource workers_source =
        ctx.policy.workers.value ? ctx.policy.workers.source : PolicySource::kDefault;
    auto elapsed_ms = [&] {
        return static_cast<int64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - origin).count());
    };

    if (ctx.kernel_release.empty()) {
        auto release = RunningKernelRelease();
        if (!release) return release.error();
        ctx.kernel_release = *release;
    }

    SigningState signing = ApplySigningPolicy(ctx);
    if (!signing.applied) spdlog::critical("modules: {}", signing.error);
    spdlog::info("modules signing policy={}({}) sig_enforce={}", ToString(ctx.policy.signing.value),
                 ToString(ctx.policy.signing.source),
                 signing.sig_enforce.empty() ? "unknown" : signing.sig_enforce);

    // One session per boot: coldplug and the handover use it after this stage.
    ctx.modload = std::make_shared<ModloadSession>(ctx.kernel, ctx.paths, ctx.kernel_release,
                                                   ctx.policy, ctx.cmdline);
    ModloadSession& session = *ctx.modload;
    if (!signing.applied) session.RefuseLoads(signing.error);
    session.MeasureWith(ctx.measurement);

    // Packages first: read once and their signatures checked before anything loads; the members
    // the plan loads are hashed in the order the loads start, beside them (R-10, PACKAGE.md).
    Phases phases;
    auto since = [](Clock::time_point t) {
        return static_cast<int64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count());
    };
    // Read ahead by PID 1 since its start (the earlier stages run beside it); the plan is made
    // while that work goes on, and only what is left of it is waited for, after the plan.
    std::shared_ptr<PackagePrefetch> prefetch =
        ctx.background.Take<PackagePrefetch>(kPackagePrefetch);
    if (prefetch && prefetch->kernel_release() == ctx.kernel_release) {
        session.AdoptPrefetch(prefetch);
    } else {
        prefetch.reset();
    }
    std::vector<std::string> warnings;

    Requests requests = CollectBootPlanInput(ctx.units, ctx.policy, ctx.cmdline);
    // For the record: "stored" (the image's stored plan), "boot: WHY" (libkmod), "none".
    std::string plan_source = "none";
    Summary summary;
    auto fail_all = [&](const Error& error) -> Result<void> {
        // Could not run: every request is recorded as failed with the reason.
        std::set<std::string> seen;
        for (const auto& req : requests.input.requests) {
            std::string name = NormalizeModuleName(req.name);
            if (!seen.insert(name).second) continue;
            ModuleOutcome o;
            o.module = name;
            o.status = Status::kFailed;
            o.reason = error.message();
            o.requested_by = {req.origin.Describe()};
            o.origins = {req.origin};
            ctx.module_outcomes.push_back(std::move(o));
        }
        summary.failed = static_cast<int>(ctx.module_outcomes.size());
        spdlog::error(
            "modules done ok=0 failed={} skipped=0 blacklisted=0 no_device=0 ms={} workers={}",
            summary.failed, elapsed_ms(), workers);
        WriteRecord(ctx, wall_time, boot_offset_ms, workers, workers_source, 0, elapsed_ms(),
                    signing, summary, &session.Packages(), nullptr, warnings, phases,
                    plan_source, error.message());
        return error;
    };

    Plan plan;
    auto step = Clock::now();
    if (!requests.input.requests.empty()) {
        if (auto stored = PlanFromStoredPlan(ctx, requests.input, plan_source)) {
            plan = std::move(*stored);
        } else {
            // All libkmod work happens here, on this thread (libkmod is not thread-safe).
            auto db = session.Db();
            if (!db) return fail_all(db.error().Context("module tree: "));
            auto built = BuildPlan(**db, requests.input);
            if (!built) return fail_all(built.error().Context("module plan: "));
            plan = std::move(*built);
        }
    }
    phases.plan_ms = since(step);
    for (const auto& w : plan.warnings) {
        spdlog::warn("module plan: {}", w);
        warnings.push_back(w);
    }

    // Jobs: the loadable entries, which come first in the plan, in load order.
    std::size_t loadable = 0;
    while (loadable < plan.entries.size() && plan.entries[loadable].Loadable()) ++loadable;
    std::vector<int> owner = OwningUnits(plan, loadable, requests);
    std::vector<LoadJob> jobs = ModloadSession::JobsOf(plan, loadable);
    for (std::size_t i = 0; i < loadable; ++i) {
        jobs[i].unit = owner[i];
        const PlanEntry& e = plan.entries[i];
        if (!e.ignored_install_command.empty()) {
            spdlog::warn("module {}: modprobe.d install command ignored at boot: {}", e.name,
                         e.ignored_install_command);
        }
    }
    std::vector<LoaderUnit> loader_units =
        LoaderUnitsOf(ctx.units.units, plan, loadable, owner, requests);

    // The packages: read (and hashed) ahead, or read now.
    step = Clock::now();
    PackageSet& packages = session.Packages();
    phases.packages_ms = since(step);
    if (prefetch) {
        phases.prefetch_load_ms = prefetch->timing().load.count() / 1000;
    }
    for (const auto& w : packages.warnings()) {
        spdlog::warn("modules: {}", w);
        warnings.push_back(w);
    }
    const auto hashed_before = session.counters().hash_us;
    // Explicit workers (peinit.workers=, ModuleWorkers) are exact; by default the loader may add
    // workers while module inits sleep.
    const int max_workers = ctx.policy.workers.value ? workers : kMaxAdaptiveWorkers;
    // Coldplug's walk of sysfs runs beside the loads (their CPUs mostly wait for the kernel);
    // devices the loads add reach coldplug as uevents.
    if (ctx.uevents != nullptr) StartDeviceScan(ctx);
    LoaderReport report = session.RunPlan(plan, jobs, loader_units, workers, max_workers, origin);
    ctx.background.Open(kRootPreparation);
    // libkmod's context for coldplug's lookups, when the plan did not open it: beside the
    // outcomes and the record, not beside the loads (a thread opening it then delays them).
    session.OpenDbAhead();
    phases.hash_ms = (session.counters().hash_us - hashed_before) / 1000;
    SetLoadSpan(jobs, report, phases);
    LogPackages(packages.reports());
    for (const auto& w : report.warnings) {
        spdlog::warn("modules: {}", w);
        warnings.push_back(w);
    }

    // Outcomes, in plan order.
    for (std::size_t i = 0; i < plan.entries.size(); ++i) {
        const PlanEntry& e = plan.entries[i];
        const bool is_job = i < loadable;
        ModuleOutcome o =
            ModloadSession::OutcomeOf(plan, requests.input, i, is_job ? &jobs[i] : nullptr,
                                      is_job ? &report.results[i] : nullptr);
        o.unit = DirectUnit(e, requests);
        if (IsAbsentHardware(e, o, requests)) {
            o.status = Status::kNoDevice;
            o.reason = "no device for it (" + o.reason + "); its unit loads it if the hardware "
                       "is present";
        }
        LogOutcome(plan, e, o);
        Count(plan, e, o, summary);
        ctx.module_outcomes.push_back(std::move(o));
    }

    const int64_t total_ms = elapsed_ms();
    spdlog::info(
        "modules done ok={} failed={} skipped={} blacklisted={} no_device={} ms={} workers={} "
        "first_load_ms={} loads_ms={}",
        summary.ok, summary.failed, summary.skipped, summary.blacklisted, summary.no_device,
        total_ms, workers, phases.first_load_ms, phases.loads_ms);
    WriteRecord(ctx, wall_time, boot_offset_ms, workers, workers_source, report.threads, total_ms,
                signing, summary, &packages, &plan, warnings, phases, plan_source, "");
    return Ok();
}

}  // namespace peinit
