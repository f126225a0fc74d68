#include "stages/autoload/demand_loader.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <set>

#include "peinit/sys/kernel.h"
#include "peinit/sys/module_decompress.h"

namespace peinit {

namespace {

using Clock = std::chrono::steady_clock;
using Status = ModuleOutcome::Status;

std::string ErrnoName(int err) {
    const char* name = strerrorname_np(err);
    return name != nullptr ? name : "errno " + std::to_string(err);
}

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

Result<std::unique_ptr<DemandLoader>> DemandLoader::Open(const BootPaths& paths,
                                                         const std::string& kernel_release,
                                                         const EffectivePolicy& policy,
                                                         const Cmdline& cmdline) {
    auto db = KmodDb::Open(paths.root, kernel_release);
    if (!db) return db.error();
    std::unique_ptr<DemandLoader> loader(new DemandLoader());
    loader->paths_ = paths;
    loader->kernel_release_ = kernel_release;
    loader->policy_ = policy;
    loader->cmdline_ = cmdline;
    loader->db_ = std::move(*db);
    return loader;
}

Result<std::vector<std::string>> DemandLoader::Resolve(std::string_view alias) {
    auto names = db_->Lookup(alias);
    (void)db_->TakeWarnings();
    return names;
}

bool DemandLoader::IsLive(Kernel& kernel, std::string_view module) {
    auto state = kernel.ReadSysfs("module/" + NormalizeModuleName(module) + "/initstate");
    return state && *state == "live";
}

const PackageSet& DemandLoader::Packages() {
    if (!packages_) {
        packages_ =
            PackageSet::Load(paths_.PackagesDir(), paths_.TrustedKeysDir(), kernel_release_);
    }
    return *packages_;
}

DemandLoadReport DemandLoader::Load(Kernel& kernel, std::string_view alias,
                                    const std::string& requested_by) {
    auto resolved = Resolve(alias);
    if (!resolved) {
        DemandLoadReport report;
        report.alias = std::string(alias);
        report.error = resolved.error().message();
        return report;
    }
    return LoadResolved(kernel, alias, *resolved, requested_by);
}

DemandLoadReport DemandLoader::LoadResolved(Kernel& kernel, std::string_view alias,
                                            const std::vector<std::string>& modules,
                                            const std::string& requested_by) {
    DemandLoadReport report;
    report.alias = std::string(alias);
    report.resolved = modules;

    // 1. The policy, per resolved module.
    PlanInput input;
    for (const auto& m : modules) {
        DemandDecision d = DecideDemandLoad(policy_, alias, m);
        if (!d.allowed()) {
            report.refused.push_back({m, d.reason});
            ModuleOutcome o;
            o.module = m;
            o.status = d.verdict == DemandDecision::Verdict::kBlacklisted ? Status::kBlacklisted
                                                                          : Status::kSkipped;
            o.reason = "refused: " + d.reason;
            o.requested_by = {requested_by};
            report.outcomes.push_back(std::move(o));
            continue;
        }
        if (IsLive(kernel, m)) {
            report.already_live.push_back(m);
            continue;
        }
        input.requests.push_back({m, requested_by, "", false});
    }
    if (input.requests.empty()) return report;

    // 2. The plan: dependencies, modprobe.d denials, options.
    for (const auto& b : policy_.blacklist) {
        input.blacklist.push_back(
            {b.module, b.source == PolicySource::kCmdline
                           ? "kernel command line modprobe.blacklist=" + b.module
                           : "hive Machine\\System\\Modules\\Blacklist"});
    }
    std::set<std::string> seen;
    for (const auto& p : cmdline_.module_params) {
        if (!seen.insert(p.module).second) continue;
        input.options.push_back({p.module, cmdline_.ModuleOptions(p.module)});
    }
    auto plan = BuildPlan(*db_, input);
    (void)db_->TakeWarnings();
    if (!plan) {
        report.error = plan.error().message();
        return report;
    }

    // 3. Load in plan order (a valid load order), one at a time.
    const auto origin = Clock::now();
    std::set<std::string> failed;  // modules that are not live after their turn
    for (const PlanEntry& e : plan->entries) {
        ModuleOutcome o;
        o.module = e.name;
        o.requested_by = e.requested_by;
        const bool requested = Contains(modules, e.name);
        if (!e.Loadable()) {
            failed.insert(e.name);
            o.status = e.status == ModuleStatus::kBlacklisted ? Status::kBlacklisted
                       : e.status == ModuleStatus::kMissing   ? Status::kMissing
                                                              : Status::kSkipped;
            o.reason = e.reason;
            if (requested && e.status == ModuleStatus::kBlacklisted) {
                report.refused.push_back({e.name, "blacklisted (" + e.reason + ")"});
            }
            report.outcomes.push_back(std::move(o));
            continue;
        }
        if (e.status == ModuleStatus::kBuiltin) {
            if (requested) report.already_live.push_back(e.name);
            continue;
        }
        if (!requested && IsLive(kernel, e.name)) continue;  // a dependency already there
        std::string missing_dep;
        for (const auto& d : e.hard_deps) {
            if (failed.count(d) != 0) {
                missing_dep = d;
                break;
            }
        }
        if (!missing_dep.empty()) {
            failed.insert(e.name);
            o.status = Status::kSkipped;
            o.reason = "dependency " + missing_dep + " did not load";
            report.outcomes.push_back(std::move(o));
            continue;
        }
        const auto start = Clock::now();
        o.start = std::chrono::duration_cast<std::chrono::microseconds>(start - origin);
        ModuleSource src = Packages().Find(e.name);
        if (src.file == nullptr) {
            failed.insert(e.name);
            o.status = Status::kFailed;
            o.reason = src.failure;
            report.outcomes.push_back(std::move(o));
            continue;
        }
        o.package = src.package;
        auto image = ModuleImageOf(src.file->path(), src.file->bytes());
        auto r = image ? kernel.InitModule(e.name, image->bytes(), e.options)
                       : Result<void>(image.error());
        o.duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
        if (r) {
            o.status = Status::kLoaded;
        } else if (r.error().code() == EEXIST) {
            o.status = Status::kAlreadyLoaded;
        } else {
            failed.insert(e.name);
            o.status = Status::kFailed;
            o.error = r.error().code();
            o.reason = r.error().message() +
                       (o.error != 0 ? " (" + ErrnoName(o.error) + ")" : std::string());
        }
        report.outcomes.push_back(std::move(o));
    }
    return report;
}

}  // namespace peinit
