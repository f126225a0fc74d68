#include "peinit/core/boot_plan.h"

#include "peinit/core/json.h"

#include <algorithm>
#include <filesystem>
#include <sstream>

namespace peinit {

namespace {

namespace fs = std::filesystem;

toml::array JsonList(const std::vector<std::string>& items) {
    toml::array out;
    for (const auto& i : items) out.push_back(i);
    return out;
}

std::string Words(const std::vector<std::string>& items) {
    if (items.empty()) return "-";
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : " ") + s;
    return out;
}

// The .ko path as the planned system sees it ("/lib/modules/..."), independent of where the
// tree sits on this machine.
std::string TargetPath(const std::string& root, const std::string& path) {
    if (path.empty()) return "";
    fs::path rel = fs::path(path).lexically_relative(root);
    if (rel.empty() || rel.native().starts_with("..")) return path;
    return "/" + rel.string();
}

std::string StatusText(const PlanEntry& e) {
    std::string s(StatusName(e.status));
    if (!e.reason.empty()) s += ": " + e.reason;
    return s;
}

std::vector<std::string> WaitNames(const Plan& plan, const PlanEntry& e) {
    std::vector<std::string> out;
    for (std::size_t i : e.waits_for) out.push_back(plan.entries[i].name);
    return out;
}

}  // namespace

std::string RenderPlanText(const Plan& plan, const PlanView& view) {
    std::ostringstream out;
    const std::string& root = view.tree_root;
    std::size_t load = 0, builtin = 0;
    for (const auto& e : plan.entries) {
        load += e.status == ModuleStatus::kLoad;
        builtin += e.status == ModuleStatus::kBuiltin;
    }
    out << view.title << ": root " << view.root << ", kernel " << view.kver << "\n";
    out << load << " to load, " << builtin << " built in, " << plan.entries.size() - load - builtin
        << " not loaded\n";
    std::size_t n = 0;
    for (const auto& e : plan.entries) {
        out << "\n" << ++n << ". " << e.name << "\n";
        out << "   status:     " << StatusText(e) << "\n";
        if (!e.path.empty()) out << "   path:       " << TargetPath(root, e.path) << "\n";
        out << "   hard deps:  " << Words(e.hard_deps) << "\n";
        out << "   soft pre:   " << Words(e.soft_pre) << "\n";
        out << "   soft post:  " << Words(e.soft_post) << "\n";
        out << "   options:    " << (e.options.empty() ? "-" : e.options) << "\n";
        if (e.Loadable()) out << "   waits for:  " << Words(WaitNames(plan, e)) << "\n";
        for (const auto& chain : e.requested_by) out << "   wanted by:  " << chain << "\n";
        if (!e.ignored_install_command.empty()) {
            out << "   note:       modprobe.d install command not run by peinit: "
                << e.ignored_install_command << "\n";
        }
    }
    if (!plan.warnings.empty() || !plan.denied.empty()) {
        out << "\nwarnings:\n";
        for (const auto& w : plan.warnings) out << "  " << w << "\n";
        for (const auto& w : plan.denied) out << "  " << w << "\n";
    }
    if (!plan.errors.empty()) {
        out << "\nerrors:\n";
        for (const auto& err : plan.errors) out << "  " << err << "\n";
    }
    return out.str();
}

std::string RenderPlanJson(const Plan& plan, const PlanView& view) {
    const std::string& root = view.tree_root;
    toml::array modules;
    for (const auto& e : plan.entries) {
        modules.push_back(toml::table{
            {"name", e.name},
            {"status", StatusName(e.status)},
            {"reason", e.reason},
            {"path", TargetPath(root, e.path)},
            {"hard_deps", JsonList(e.hard_deps)},
            {"soft_pre", JsonList(e.soft_pre)},
            {"soft_post", JsonList(e.soft_post)},
            {"options", e.options},
            {"waits_for", JsonList(WaitNames(plan, e))},
            {"requested_by", JsonList(e.requested_by)},
            {"ignored_install_command", e.ignored_install_command},
        });
    }
    std::vector<std::string> warnings = plan.warnings;
    warnings.insert(warnings.end(), plan.denied.begin(), plan.denied.end());
    return FormatJson(toml::table{
        {"version", kPlanJsonVersion},
        {"root", view.root},
        {"kver", view.kver},
        {"ok", plan.ok()},
        {"modules", std::move(modules)},
        {"warnings", JsonList(warnings)},
        {"errors", JsonList(plan.errors)},
    });
}

std::string RenderPlanCompact(const Plan& plan, const PlanView& view) {
    std::ostringstream out;
    for (const auto& e : plan.entries) {
        switch (e.status) {
            case ModuleStatus::kLoad:
                out << "insmod " << TargetPath(view.tree_root, e.path)
                    << (e.options.empty() ? "" : " " + e.options) << "\n";
                break;
            case ModuleStatus::kBuiltin:
                out << "builtin " << e.name << "\n";
                break;
            default:
                out << "# " << StatusName(e.status) << " " << e.name << ": " << e.reason << "\n";
                break;
        }
    }
    for (const auto& w : plan.warnings) out << "# warning: " << w << "\n";
    for (const auto& w : plan.denied) out << "# warning: " << w << "\n";
    for (const auto& err : plan.errors) out << "# error: " << err << "\n";
    return out.str();
}

PlanInput PolicyPlanInput(const EffectivePolicy& policy, const Cmdline& cmd) {
    PlanInput input;
    for (const auto& b : policy.blacklist) {
        input.blacklist.push_back({b.module, b.source == PolicySource::kCmdline
                                                 ? "kernel command line modprobe.blacklist=" +
                                                       b.module
                                                 : "hive Machine\\System\\Modules\\Blacklist"});
    }
    std::vector<std::string> seen;
    for (const auto& mp : cmd.module_params) {
        if (std::find(seen.begin(), seen.end(), mp.module) != seen.end()) continue;
        seen.push_back(mp.module);
        input.options.push_back({mp.module, cmd.ModuleOptions(mp.module)});
    }
    return input;
}

BootPlanInput CollectBootPlanInput(const UnitSet& units, const EffectivePolicy& policy,
                                   const Cmdline& cmd) {
    BootPlanInput r;
    r.input = PolicyPlanInput(policy, cmd);
    for (std::size_t u = 0; u < units.units.size(); ++u) {
        const Unit& unit = units.units[u];
        for (const auto& m : unit.modules) {
            r.input.requests.push_back(
                {m.name, RequestOrigin::Unit(unit.name), m.options, m.optional});
            r.unit_of.push_back(static_cast<int>(u));
            r.if_hardware_present.push_back(m.if_hardware_present);
        }
    }
    for (const auto& name : cmd.modules_load) {
        r.input.requests.push_back({name, RequestOrigin::Cmdline(), "", false});
        r.unit_of.push_back(-1);
        r.if_hardware_present.push_back(false);
    }
    return r;
}

}  // namespace peinit
