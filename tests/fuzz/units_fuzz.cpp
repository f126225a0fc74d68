// libFuzzer target: the unit-file parsers and the linker (peinit/core/units.h, units/SCHEMA.md).
//
// Input: one or more files separated by NUL bytes (which no unit file can contain); each starts
// with a line giving its file name ("net.toml", "legacy.conf"), the rest is its text. Every
// file goes through ParseUnitFile, the parsed ones through LinkUnits.
//
// Checks: every error names its file and a line inside it; a parsed unit satisfies the schema
// (valid names, module options in valid kernel syntax, exec[0] absolute, ...), table options
// tokenise back to the table's values (the rendering table in SCHEMA.md), and the unit written
// back canonically parses to the same unit; linked units come after their `after` targets, have
// unique unit and service names, and the order does not depend on the input order.

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "peinit/core/cmdline.h"
#include "peinit/core/units.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/toml_write.h"

namespace {

using namespace peinit;

void CheckErrors(const ConfigErrors& errors, size_t from, const std::set<std::string>& paths,
                 const std::map<std::string, int>& lines) {
    for (size_t i = from; i < errors.size(); ++i) {
        const ConfigError& e = errors[i];
        FUZZ_CHECK(paths.count(e.path) == 1, "error for an unknown file: " + e.ToString());
        FUZZ_CHECK(!e.message.empty(), "empty error message");
        FUZZ_CHECK(e.line >= 1 && e.line <= lines.at(e.path),
                   "error without a line in the file: " + e.ToString());
    }
}

std::string_view ExitActionName(ServiceSpec::ExitAction a) {
    switch (a) {
        case ServiceSpec::ExitAction::kPoweroff:
            return "poweroff";
        case ServiceSpec::ExitAction::kReboot:
            return "reboot";
        case ServiceSpec::ExitAction::kNone:
            break;
    }
    return "none";
}

toml::array Names(const std::vector<NameRef>& refs) {
    toml::array a;
    for (const auto& r : refs) a.push_back(r.name);
    return a;
}

// The unit in its canonical spelling: TOML with string options, or a modules-load.d list.
std::string Canonical(const Unit& u) {
    std::ostringstream out;
    if (u.format == UnitFormat::kModulesLoad) {
        for (const auto& m : u.modules) out << m.name << "\n";
        return out.str();
    }
    toml::table t;
    if (!u.description.empty()) t.insert("description", u.description);
    if (!u.after.empty()) t.insert("after", Names(u.after));
    if (u.sequential) t.insert("sequential", true);
    toml::array modules;
    for (const auto& m : u.modules) {
        toml::table mt{{"name", m.name}};
        if (!m.options.empty()) mt.insert("options", m.options);
        if (m.optional) mt.insert("optional", true);
        modules.push_back(std::move(mt));
    }
    if (!modules.empty()) t.insert("module", std::move(modules));
    toml::array services;
    for (const auto& s : u.services) {
        toml::array exec;
        for (const auto& arg : s.exec) exec.push_back(arg);
        toml::table st{{"name", s.name}, {"exec", std::move(exec)}};
        if (s.user) st.insert("user", *s.user);
        if (s.uid) st.insert("uid", static_cast<int64_t>(*s.uid));
        if (!s.environment.empty()) {
            toml::table env;
            for (const auto& [k, v] : s.environment) env.insert(k, v);
            st.insert("environment", std::move(env));
        }
        if (!s.after.empty()) st.insert("after", Names(s.after));
        if (s.exit_action != ServiceSpec::ExitAction::kNone) {
            st.insert("exit_action", std::string(ExitActionName(s.exit_action)));
        }
        services.push_back(std::move(st));
    }
    if (!services.empty()) t.insert("service", std::move(services));
    out << fuzz::Formatted(t);
    return out.str();
}

std::vector<std::string> RefNames(const std::vector<NameRef>& refs) {
    std::vector<std::string> out;
    for (const auto& r : refs) out.push_back(r.name);
    return out;
}

// Equal in everything but line numbers.
bool SameUnit(const Unit& a, const Unit& b) {
    if (a.name != b.name || a.format != b.format || a.description != b.description ||
        RefNames(a.after) != RefNames(b.after) || a.sequential != b.sequential ||
        a.modules.size() != b.modules.size() || a.services.size() != b.services.size()) {
        return false;
    }
    for (size_t i = 0; i < a.modules.size(); ++i) {
        const auto &x = a.modules[i], &y = b.modules[i];
        if (x.name != y.name || x.options != y.options || x.optional != y.optional) return false;
    }
    for (size_t i = 0; i < a.services.size(); ++i) {
        const auto &x = a.services[i], &y = b.services[i];
        if (x.name != y.name || x.exec != y.exec || x.user != y.user || x.uid != y.uid ||
            x.environment != y.environment || RefNames(x.after) != RefNames(y.after) ||
            x.exit_action != y.exit_action) {
            return false;
        }
    }
    return true;
}

// The kernel text SCHEMA.md gives for one table option value, without the quotes.
std::optional<std::string> Rendered(const toml::node& v) {
    if (const auto* s = v.as_string()) return s->get();
    if (const auto* i = v.as_integer()) return std::to_string(i->get());
    if (const auto* b = v.as_boolean()) return std::string(b->get() ? "1" : "0");
    if (const auto* a = v.as_array()) {
        std::string out;
        for (const auto& item : *a) {
            auto r = Rendered(item);
            if (!r) return std::nullopt;
            out += (out.empty() ? "" : ",") + *r;
        }
        return out;
    }
    return std::nullopt;
}

void CheckTableOptions(const Unit& u, std::string_view text) {
    if (u.modules.empty()) return;
    toml::table doc = toml::parse(text);  // ParseUnitFile accepted it, so it parses
    const toml::array* modules = doc["module"].as_array();
    FUZZ_CHECK(modules && modules->size() == u.modules.size(), "module count differs");
    for (size_t i = 0; i < u.modules.size(); ++i) {
        const toml::table* options = (*modules)[i].as_table()->get_as<toml::table>("options");
        if (options == nullptr) continue;
        std::vector<KernelParam> expected;
        for (auto&& [k, v] : *options) expected.push_back({std::string(k.str()), Rendered(v)});
        auto got = TokenizeCmdline(u.modules[i].options);
        bool same = got.size() == expected.size();
        for (size_t j = 0; same && j < got.size(); ++j) {
            same = got[j].key == expected[j].key && got[j].value == expected[j].value;
        }
        FUZZ_CHECK(same, "table options of " + u.modules[i].name + " rendered as \"" +
                             u.modules[i].options + "\", which the kernel reads differently");
    }
}

void CheckUnit(const Unit& u, const std::string& path, std::string_view text) {
    FUZZ_CHECK(u.path == path && u.name == UnitNameFromPath(path), "wrong unit name or path");
    FUZZ_CHECK(IsValidUnitName(u.name), "invalid unit name " + u.name);
    bool conf = path.size() > 5 && path.substr(path.size() - 5) == ".conf";
    FUZZ_CHECK(u.format == (conf ? UnitFormat::kModulesLoad : UnitFormat::kToml), "wrong format");
    FUZZ_CHECK(conf || !u.modules.empty() || !u.services.empty(), "TOML unit declares nothing");
    std::set<std::string> seen;
    for (const auto& m : u.modules) {
        FUZZ_CHECK(IsValidModuleRef(m.name), "invalid module name " + m.name);
        FUZZ_CHECK(seen.insert(NormalizeModuleName(m.name)).second, "module twice: " + m.name);
        FUZZ_CHECK(m.line >= 1, "module without a line");
        bool dashes = false;
        for (const auto& p : TokenizeCmdline(m.options, nullptr, &dashes)) {
            FUZZ_CHECK(IsValidModuleParamName(p.key),
                       "invalid option \"" + p.key + "\" in " + m.options);
        }
        FUZZ_CHECK(!dashes, "options with \"--\": " + m.options);
        FUZZ_CHECK(std::count(m.options.begin(), m.options.end(), '"') % 2 == 0,
                   "unbalanced quotes in options: " + m.options);
    }
    for (const auto& r : u.after) FUZZ_CHECK(IsValidUnitName(r.name), "invalid after " + r.name);
    for (const auto& s : u.services) {
        FUZZ_CHECK(IsValidUnitName(s.name), "invalid service name " + s.name);
        FUZZ_CHECK(!s.exec.empty() && !s.exec[0].empty() && s.exec[0][0] == '/',
                   "service " + s.name + " has no absolute program");
        for (const auto& r : s.after) FUZZ_CHECK(IsValidUnitName(r.name), "invalid " + r.name);
    }
    if (!conf) CheckTableOptions(u, text);

    std::string canonical = Canonical(u);
    ConfigErrors errors;
    auto again = ParseUnitFile(path, canonical, errors);
    std::string why = errors.empty() ? "" : errors[0].ToString();
    FUZZ_CHECK(again && SameUnit(u, *again),
               "canonical form does not round-trip (" + why + "):\n" + canonical);
}

void CheckLinked(const UnitSet& set) {
    std::set<std::string> units, services;
    for (const auto& u : set.units) {
        for (const auto& r : u.after) {
            FUZZ_CHECK(units.count(r.name) == 1, u.name + " comes before its after " + r.name);
        }
        FUZZ_CHECK(units.insert(u.name).second, "unit " + u.name + " twice");
        for (const auto& s : u.services) {
            FUZZ_CHECK(services.insert(s.name).second, "service " + s.name + " twice");
        }
    }
    for (const auto& u : set.units) {
        for (const auto& s : u.services) {
            for (const auto& r : s.after) {
                FUZZ_CHECK(services.count(r.name) == 1, s.name + ": unknown after " + r.name);
            }
        }
    }
}

std::vector<std::string> Order(const UnitSet& set) {
    std::vector<std::string> out;
    for (const auto& u : set.units) out.push_back(u.name);
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input = fuzz::AsText(data, size);
    std::vector<Unit> parsed;
    std::set<std::string> paths, names;
    std::map<std::string, int> lines;
    ConfigErrors errors;
    size_t pos = 0;
    while (pos <= input.size() && paths.size() < 16) {
        size_t end = std::min(input.find('\0', pos), input.size());
        std::string_view file = input.substr(pos, end - pos);
        pos = end + 1;
        size_t nl = std::min(file.find('\n'), file.size());
        std::string path = "units/" + std::string(file.substr(0, nl));
        std::string_view text = file.substr(std::min(nl + 1, file.size()));
        if (!paths.insert(path).second) continue;  // one text per path
        lines[path] = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;

        size_t before = errors.size();
        auto unit = ParseUnitFile(path, text, errors);
        FUZZ_CHECK(unit.has_value() == (errors.size() == before),
                   "a unit is returned if and only if it has no errors");
        CheckErrors(errors, before, paths, lines);
        if (!unit) continue;
        CheckUnit(*unit, path, text);
        names.insert(unit->name);
        parsed.push_back(std::move(*unit));
    }

    std::vector<Unit> reversed(parsed.rbegin(), parsed.rend());
    size_t before = errors.size();
    UnitSet set = LinkUnits(std::move(parsed), errors);
    CheckErrors(errors, before, paths, lines);
    CheckLinked(set);
    if (names.size() == reversed.size()) {  // unique names: the input order must not matter
        ConfigErrors errors2;
        FUZZ_CHECK(Order(LinkUnits(std::move(reversed), errors2)) == Order(set),
                   "the load order depends on the input order");
        FUZZ_CHECK(errors2.size() == errors.size() - before, "the errors depend on the order");
    }
    return 0;
}
