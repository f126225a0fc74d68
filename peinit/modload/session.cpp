#include "peinit/modload/session.h"

#include "peinit/core/boot_plan.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

#include "peinit/core/cmdline.h"
#include "peinit/core/contain.h"
#include "peinit/core/demand_load.h"
#include "peinit/sys/kernel.h"
#include "peinit/sys/kmod.h"
#include "peinit/sys/module_decompress.h"
#include "peinit/sys/package_crypto.h"
#include "peinit/sys/module_elf.h"
#include "peinit/sys/package_format.h"
#include "peinit/tpm/measure.h"

namespace peinit {

namespace {

using Status = ModuleOutcome::Status;

bool Contains(const std::vector<std::string>& v, std::string_view s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

bool DemandLoadReport::Succeeded() const {
    if (resolved.empty() || !error.empty() || !refused.empty()) return false;
    for (const auto& m : resolved) {
        if (Contains(already_live, m)) continue;
        auto it = std::find_if(outcomes.begin(), outcomes.end(),
                               [&](const ModuleOutcome& o) { return o.module == m; });
        if (it == outcomes.end() || !it->Succeeded()) return false;
    }
    return true;
}

ModloadSession::ModloadSession(Kernel& kernel, BootPaths paths, std::string kernel_release,
                               EffectivePolicy policy, Cmdline cmdline)
    : kernel_(kernel),
      paths_(std::move(paths)),
      kernel_release_(std::move(kernel_release)),
      policy_(std::move(policy)),
      cmdline_(std::move(cmdline)) {
    // SigningPolicy=enforce holds for every loader, not only the boot's module stage (which
    // applies it before opening its session): when the kernel does not enforce signatures,
    // coldplug and the demand-load helper load nothing either.
    if (policy_.signing.value == SigningPolicy::kEnforce) {
        auto read = kernel_.ReadSysfs(kSigEnforceSysfs);
        if (!read || !ParseKernelBool(*read).value_or(false)) {
            refusal_ = "SigningPolicy=enforce is not in effect (module.sig_enforce " +
                       (read ? "reads " + *read : "unreadable: " + read.error().message()) +
                       "): loading nothing";
        }
    }
}

ModloadSession::~ModloadSession() = default;

SessionCounters ModloadSession::counters() const {
    return {db_opens_, package_set_loads_, load_calls_.load(),
            packages_ ? packages_->hash_time().count() : 0};
}

void ModloadSession::OpenDbAhead() {
    if (db_ || db_error_ || db_ahead_.valid()) return;
    try {
        ++db_opens_;
        db_ahead_ = std::async(std::launch::async, [root = paths_.root, release = kernel_release_]()
                                   -> Result<std::unique_ptr<KmodDb>> {
            try {
                return KmodDb::Open(root, release);
            } catch (...) {
                // Contained: Db() then reports it as the database's error.
                return Err(UnexpectedException("module database opened ahead"));
            }
        });
    } catch (const std::system_error&) {
        // No thread: Db() opens the database itself when it is needed.
        --db_opens_;
    }
}

Result<KmodDb*> ModloadSession::Db() {
    if (db_) return db_.get();
    if (db_error_) return *db_error_;
    auto db = [&]() -> Result<std::unique_ptr<KmodDb>> {
        if (db_ahead_.valid()) return db_ahead_.get();  // counted when it was started
        ++db_opens_;
        return KmodDb::Open(paths_.root, kernel_release_);
    }();
    if (!db) {
        db_error_ = db.error();
        return db.error();
    }
    db_ = std::move(*db);
    return db_.get();
}

PackageSet& ModloadSession::Packages() {
    if (!packages_) {
        ++package_set_loads_;
        if (prefetch_) {
            packages_ = prefetch_->Take();
            prefetch_.reset();
        }
        if (!packages_ && packages_index_) {
            std::shared_ptr<const TrustStore> trust = trust_;
            if (!trust) {
                if (auto loaded = TrustStore::LoadDirectory(paths_.TrustedKeysDir())) {
                    trust = std::make_shared<const TrustStore>(std::move(*loaded));
                }
            }
            packages_ = PackageSet::Indexed(paths_.PackagesDir(), std::move(*packages_index_),
                                            std::move(trust), kernel_release_);
        }
        if (!packages_) {
            packages_ = PackageSet::Load(paths_.PackagesDir(), paths_.TrustedKeysDir(),
                                         kernel_release_, trust_);
        }
    }
    return *packages_;
}

void ModloadSession::AdoptPrefetch(std::shared_ptr<PackagePrefetch> prefetch) {
    if (!packages_) prefetch_ = std::move(prefetch);
}

PlanInput ModloadSession::NewInput() const { return PolicyPlanInput(policy_, cmdline_); }

bool ModloadSession::IsLive(std::string_view module) {
    auto state = kernel_.ReadSysfs("module/" + NormalizeModuleName(module) + "/initstate");
    return state && *state == "live";
}

LoadAttempt ModloadSession::LoadEntry(const PlanEntry& e) {
    LoadAttempt a;
    ModuleSource src;
    if (!refusal_) src = Packages().Find(e.name);
    if (refusal_ || src.file == nullptr) {
        // Nothing verified to load; a module the kernel already has is still fine.
        if (IsLive(e.name)) {
            a.ok = a.already_loaded = true;
            return a;
        }
        a.message = refusal_ ? *refusal_ : src.failure;
        a.cause = refusal_                                      ? "signing policy not applied"
                  : src.failure.starts_with("package rejected") ? "package rejected"
                                                                : src.failure;
        a.package = src.package;
        return a;
    }
    a.package = src.package;
    auto image = ModuleImageOf(src.file->path(), src.file->bytes());
    if (!image) {
        a.error = image.error().code();
        a.cause = "cannot decompress";
        a.message = image.error().message();
        return a;
    }
    // The bytes must be the module they are looked up as: a signed member holding another
    // module rejects its package, like a hash mismatch.
    if (auto named = CheckModuleName(image->bytes(), e.name, src.file->path()); !named) {
        Packages().RejectPackageOf(e.name, named.error());
        a.cause = "package rejected";
        a.message = "package rejected (" + src.package + ": " + named.error().message() + ")";
        return a;
    }
    if (measurement_) {
        // Measured before the kernel sees the bytes: the digest of exactly what goes to
        // init_module, which for an uncompressed member is the package's verified hash.
        const bool same = image->bytes().data() == src.file->bytes().data() &&
                          image->bytes().size() == src.file->bytes().size();
        const std::string sha256 = same ? HexEncode(src.file->sha256())
                                        : tpm::Hex(tpm::Sha256(image->bytes()));
        measurement_->MeasureModule(e.name, sha256, src.package, src.signer);
    }
    ++load_calls_;
    auto r = kernel_.InitModule(e.name, image->bytes(), e.options);
    if (r) {
        a.ok = true;
    } else if (r.error().code() == EEXIST) {
        a.ok = a.already_loaded = true;
    } else {
        a.error = r.error().code();
        a.cause = a.error != 0 ? ErrnoName(a.error) : r.error().message();
        a.message = r.error().message() + " (" + a.cause + ")";
    }
    return a;
}

std::vector<LoadJob> ModloadSession::JobsOf(const Plan& plan, std::size_t loadable) {
    std::vector<LoadJob> jobs(loadable);
    for (std::size_t i = 0; i < loadable; ++i) {
        const PlanEntry& e = plan.entries[i];
        LoadJob& job = jobs[i];
        job.name = e.name;
        job.builtin = e.status == ModuleStatus::kBuiltin;
        for (std::size_t w : e.waits_for) {
            if (w >= loadable) continue;
            const std::string& dep = plan.entries[w].name;
            bool hard = Contains(e.hard_deps, dep);
            (hard ? job.hard : job.soft).push_back(w);
        }
    }
    return jobs;
}

LoaderReport ModloadSession::RunPlan(const Plan& plan, const std::vector<LoadJob>& jobs,
                                     const std::vector<LoaderUnit>& units, int workers,
                                     int max_workers,
                                     std::chrono::steady_clock::time_point origin) {
    // What each load costs, for the loader's choice among ready jobs: the module's size; the
    // members are checked in the order the loads will start while they run (PACKAGE.md).
    std::vector<LoadJob> costed = jobs;
    if (!refusal_) {
        for (auto& job : costed) job.cost = job.builtin ? 0 : Packages().SizeOf(job.name);
        std::vector<std::string> names;
        for (std::size_t j : ExpectedStartOrder(costed, workers, max_workers)) {
            names.push_back(costed[j].name);
        }
        Packages().StartStream(names);
    }
    LoaderReport report = RunLoader(
        costed, units, std::max(workers, 1),
        [&](std::size_t i) { return LoadEntry(plan.entries[i]); }, origin, max_workers);
    // Every member of the plan is judged before the stage reports, even those whose loads
    // were skipped: a mismatch anywhere in the set is found and reported.
    if (!refusal_) Packages().FinishStream();
    return report;
}
ModuleOutcome ModloadSession::OutcomeOf(const Plan& plan, const PlanInput& input, std::size_t i,
                                        const LoadJob* job, const JobResult* r) {
    const PlanEntry& e = plan.entries[i];
    ModuleOutcome o;
    o.module = e.name;
    o.requested_by = e.requested_by;
    for (std::size_t w : e.wanted_by) {
        const RequestOrigin& origin = input.requests[w].origin;
        if (std::find(o.origins.begin(), o.origins.end(), origin) == o.origins.end()) {
            o.origins.push_back(origin);
        }
    }
    for (std::size_t w : e.waits_for) o.waits_for.push_back(plan.entries[w].name);
    if (job == nullptr || r == nullptr) {
        o.status = e.status == ModuleStatus::kBlacklisted ? Status::kBlacklisted
                   : e.status == ModuleStatus::kMissing   ? Status::kMissing
                                                          : Status::kSkipped;
        o.reason = e.reason;
        return o;
    }
    o.start = r->start;
    o.ready = r->ready;
    o.duration = r->duration;
    if (job->builtin) {
        o.status = Status::kBuiltin;
    } else if (r->state == JobResult::State::kLive) {
        o.status = r->attempt.already_loaded ? Status::kAlreadyLoaded : Status::kLoaded;
        o.package = r->attempt.package;
    } else if (r->state == JobResult::State::kFailed) {
        o.status = Status::kFailed;
        o.error = r->attempt.error;
        o.reason = r->attempt.message;
        o.package = r->attempt.package;
    } else {
        o.status = Status::kSkipped;
        o.reason = r->skip_reason;
    }
    return o;
}

Result<std::vector<std::string>> ModloadSession::Resolve(std::string_view alias) {
    KmodDb* db = PEINIT_TRY(Db());
    auto names = db->Lookup(alias);
    (void)db->TakeWarnings();
    return names;
}

DemandLoadReport ModloadSession::Demand(std::string_view alias, const RequestOrigin& origin) {
    auto resolved = Resolve(alias);
    if (!resolved) {
        DemandLoadReport report;
        report.alias = std::string(alias);
        report.error = resolved.error().message();
        return report;
    }
    return DemandResolved(alias, *resolved, origin);
}

DemandLoadReport ModloadSession::DemandResolved(std::string_view alias,
                                                const std::vector<std::string>& modules,
                                                const RequestOrigin& origin) {
    DemandLoadReport report;
    report.alias = std::string(alias);
    report.resolved = modules;

    // 1. The policy, per resolved module.
    PlanInput input = NewInput();
    for (const auto& m : modules) {
        DemandDecision d = DecideDemandLoad(policy_, alias, m);
        if (!d.allowed()) {
            report.refused.push_back({m, d.reason});
            ModuleOutcome o;
            o.module = m;
            o.status = d.verdict == DemandDecision::Verdict::kBlacklisted ? Status::kBlacklisted
                                                                          : Status::kSkipped;
            o.reason = "refused: " + d.reason;
            o.refused = true;
            o.requested_by = {origin.Describe()};
            o.origins = {origin};
            report.outcomes.push_back(std::move(o));
            continue;
        }
        if (IsLive(m)) {
            report.already_live.push_back(m);
            continue;
        }
        input.requests.push_back({m, origin, "", false});
    }
    if (input.requests.empty()) return report;

    // 2. The plan: dependencies, modprobe.d denials, options.
    auto db = Db();
    if (!db) {
        report.error = db.error().message();
        return report;
    }
    auto plan = BuildPlan(**db, input);
    (void)(*db)->TakeWarnings();
    if (!plan) {
        report.error = plan.error().message();
        return report;
    }
    // Soft dependencies (softdep pre/post) are modules of their own that nobody listed: the
    // policy decides on them like on the module asked for. Hard dependencies come with an
    // allowed module (it cannot work without them). A refused soft dependency is left out of
    // the plan, as the planner leaves out one that cannot load.
    std::map<std::string, std::string> soft_refused;  // module -> reason
    {
        std::set<std::string> hard(modules.begin(), modules.end());
        for (bool grew = true; grew;) {
            grew = false;
            for (const auto& e : plan->entries) {
                if (!hard.count(e.name)) continue;
                for (const auto& d : e.hard_deps) grew = hard.insert(d).second || grew;
            }
        }
        for (const auto& e : plan->entries) {
            if (hard.count(e.name) || e.status != ModuleStatus::kLoad) continue;
            DemandDecision d = DecideDemandLoad(policy_, alias, e.name);
            if (d.allowed()) continue;
            soft_refused[e.name] = d.reason;
            report.soft_refused.push_back({e.name, d.reason});
            input.blacklist.push_back({e.name, "refused soft dependency: " + d.reason});
        }
        if (!soft_refused.empty()) {
            plan = BuildPlan(**db, input);
            (void)(*db)->TakeWarnings();
            if (!plan) {
                report.error = plan.error().message();
                return report;
            }
        }
    }

    // 3. Load in plan order on one worker. Dependencies the kernel already has are live from
    //    the start and left out of the report, like built-ins.
    std::size_t loadable = 0;
    while (loadable < plan->entries.size() && plan->entries[loadable].Loadable()) ++loadable;
    std::vector<LoadJob> jobs = JobsOf(*plan, loadable);
    std::vector<bool> quiet(loadable, false);
    for (std::size_t i = 0; i < loadable; ++i) {
        const bool requested = Contains(modules, jobs[i].name);
        if (jobs[i].builtin) {
            quiet[i] = true;
            if (requested) report.already_live.push_back(jobs[i].name);
        } else if (!requested && IsLive(jobs[i].name)) {
            jobs[i].builtin = quiet[i] = true;
        }
    }
    LoaderReport run = RunPlan(*plan, jobs, {}, 1, 1, std::chrono::steady_clock::now());
    for (std::size_t i = 0; i < plan->entries.size(); ++i) {
        if (i < loadable && quiet[i]) continue;
        const bool is_job = i < loadable;
        ModuleOutcome o = OutcomeOf(*plan, input, i, is_job ? &jobs[i] : nullptr,
                                    is_job ? &run.results[i] : nullptr);
        if (auto it = soft_refused.find(o.module); it != soft_refused.end()) {
            o.status = Status::kSkipped;
            o.reason = "refused: " + it->second + " (a soft dependency is decided on its own)";
            o.refused = true;
        }
        if (o.status == Status::kBlacklisted && Contains(modules, o.module)) {
            report.refused.push_back({o.module, "blacklisted (" + o.reason + ")"});
        }
        report.outcomes.push_back(std::move(o));
    }
    return report;
}

}  // namespace peinit
