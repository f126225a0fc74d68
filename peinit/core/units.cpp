#include "peinit/core/units.h"

#include <linux/capability.h>

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <set>

#include "peinit/core/cmdline.h"
#include "peinit/core/module_policy.h"
#include "peinit/core/toml_util.h"

namespace peinit {

namespace {

bool IsValidEnvName(std::string_view name) {
    if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_';
    });
}

bool HasSpace(std::string_view s) {
    return std::any_of(s.begin(), s.end(),
                       [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string_view Trim(std::string_view s) {
    size_t b = s.find_first_not_of(" \t\r\v\f");
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(" \t\r\v\f");
    return s.substr(b, e - b + 1);
}

// Parses one TOML unit, recording every problem instead of stopping at the first.
class TomlUnitParser {
  public:
    TomlUnitParser(const std::string& path, ConfigErrors& errors)
        : path_(path), errors_(errors), first_error_(errors.size()) {}

    // The unit as far as it could be read; `broken` when it has any error.
    Unit Parse(std::string_view text) {
        Unit unit;
        unit.name = UnitNameFromPath(path_);
        unit.path = path_;
        unit.format = UnitFormat::kToml;
        unit.broken = true;
        TomlDocument doc = ParseTomlRecovering(path_, text, errors_);
        if (!IsValidUnitName(unit.name)) {
            Error(1, "invalid unit name " + Quote(unit.name) + " (from the file name)");
        }
        if (!doc.table) return unit;

        size_t first_check = errors_.size();
        size_t declared = 0;
        for (auto&& [key, node] : *doc.table) {
            std::string_view k = key.str();
            if (k == "description") {
                if (auto s = String(node, "description")) unit.description = *s;
            } else if (k == "after") {
                unit.after = NameList(node, "after", "unit");
            } else if (k == "sequential") {
                if (auto b = Bool(node, "sequential")) unit.sequential = *b;
            } else if (k == "module") {
                declared += EachTable(node, "module", [&](const toml::table& t) {
                    if (auto m = Module(t)) unit.modules.push_back(std::move(*m));
                });
            } else if (k == "service") {
                declared += EachTable(node, "service", [&](const toml::table& t) {
                    if (auto s = Service(t)) unit.services.push_back(std::move(*s));
                });
            } else {
                Error(LineOf(key), "unknown key " + Quote(k));
            }
        }
        if (declared == 0 && doc.complete()) Error(1, "unit declares no modules or services");
        CheckDuplicateModules(unit);
        // With a syntax error, what the checks find in that error's section may be its
        // consequence (the line that was blanked held a name, a header, ...): not reported.
        errors_.erase(std::remove_if(errors_.begin() + static_cast<std::ptrdiff_t>(first_check),
                                     errors_.end(),
                                     [&](const ConfigError& e) { return !doc.Independent(e.line); }),
                      errors_.end());

        if (errors_.size() != first_error_) {
            // toml++ iterates keys in sorted order; report in file order instead.
            std::stable_sort(
                errors_.begin() + static_cast<std::ptrdiff_t>(first_error_), errors_.end(),
                [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
            return unit;
        }
        unit.broken = false;
        return unit;
    }

  private:
    void Error(int line, std::string message) {
        errors_.push_back({path_, line, std::move(message)});
    }

    void WrongType(const toml::node& node, std::string_view what, std::string_view expected) {
        Error(LineOf(node), Quote(what) + " must be " + std::string(expected) + ", not " +
                                std::string(TomlTypeName(node)));
    }

    std::optional<std::string> String(const toml::node& node, std::string_view what) {
        if (auto s = node.as_string()) return s->get();
        WrongType(node, what, "a string");
        return std::nullopt;
    }

    std::optional<bool> Bool(const toml::node& node, std::string_view what) {
        if (auto b = node.as_boolean()) return b->get();
        WrongType(node, what, "a boolean");
        return std::nullopt;
    }

    // An array of unit or service names.
    std::vector<NameRef> NameList(const toml::node& node, std::string_view what,
                                  std::string_view kind) {
        std::vector<NameRef> out;
        const toml::array* array = node.as_array();
        if (array == nullptr) {
            WrongType(node, what, "an array of strings");
            return out;
        }
        for (const toml::node& item : *array) {
            const auto* s = item.as_string();
            if (s == nullptr) {
                Error(LineOf(item), Quote(what) + " entries must be strings, not " +
                                        std::string(TomlTypeName(item)));
            } else if (s->get().empty()) {
                Error(LineOf(item), "empty " + std::string(kind) + " name in " + Quote(what));
            } else if (!IsValidUnitName(s->get())) {
                Error(LineOf(item), "invalid " + std::string(kind) + " name " + Quote(s->get()) +
                                        " in " + Quote(what));
            } else {
                out.push_back({s->get(), LineOf(item)});
            }
        }
        return out;
    }

    // Calls `fn` for each table of an array of tables; returns how many entries were declared.
    size_t EachTable(const toml::node& node, std::string_view what,
                     const std::function<void(const toml::table&)>& fn) {
        const toml::array* array = node.as_array();
        std::string expected = "an array of tables ([[" + std::string(what) + "]])";
        if (array == nullptr) {
            WrongType(node, what, expected);
            return 1;  // it was declared, just wrongly: not also "declares nothing"
        }
        for (const toml::node& item : *array) {
            if (const auto* t = item.as_table()) {
                fn(*t);
            } else {
                Error(LineOf(item), Quote(what) + " entries must be tables ([[" +
                                        std::string(what) + "]]), not " +
                                        std::string(TomlTypeName(item)));
            }
        }
        return array->size();
    }

    std::optional<ModuleSpec> Module(const toml::table& table) {
        size_t before = errors_.size();
        ModuleSpec m;
        m.line = LineOf(table);
        bool has_name = false;
        for (auto&& [key, node] : table) {
            std::string_view k = key.str();
            if (k == "name") {
                has_name = true;
                auto s = String(node, "name");
                if (!s) continue;
                if (s->empty()) {
                    Error(LineOf(node), "module name is empty");
                } else if (!IsValidModuleRef(*s)) {
                    Error(LineOf(node), "invalid module name " + Quote(*s));
                } else {
                    m.name = *s;
                }
            } else if (k == "options") {
                if (auto o = Options(node)) m.options = *o;
            } else if (k == "optional") {
                if (auto b = Bool(node, "optional")) m.optional = *b;
            } else if (k == "if_hardware_present") {
                if (auto b = Bool(node, "if_hardware_present")) m.if_hardware_present = *b;
            } else {
                Error(LineOf(key), "unknown key " + Quote(k) + " in [[module]]");
            }
        }
        if (!has_name) Error(m.line, "[[module]] has no \"name\"");
        if (errors_.size() != before) return std::nullopt;
        return m;
    }

    // Module options as a string (kernel syntax, validated) or a table rendered to it.
    std::optional<std::string> Options(const toml::node& node) {
        if (const auto* s = node.as_string()) {
            std::string_view text = Trim(s->get());
            if (std::count(text.begin(), text.end(), '"') % 2 != 0) {
                Error(LineOf(node), "\"options\" has an unterminated quote");
                return std::nullopt;
            }
            // The kernel ignores everything after a `--` in module parameters; refuse it
            // rather than silently lose options.
            bool saw_dashes = false;
            for (const auto& p : TokenizeCmdline(text, nullptr, &saw_dashes)) {
                if (!IsValidModuleParamName(p.key)) {
                    Error(LineOf(node), "invalid module option " + Quote(p.key));
                    return std::nullopt;
                }
            }
            if (saw_dashes) {
                Error(LineOf(node), "invalid module option \"--\"");
                return std::nullopt;
            }
            return std::string(text);
        }
        const auto* table = node.as_table();
        if (table == nullptr) {
            WrongType(node, "options", "a string or a table");
            return std::nullopt;
        }
        std::string out;
        bool ok = true;
        for (auto&& [key, value] : *table) {
            std::string_view k = key.str();
            if (!IsValidModuleParamName(k)) {
                Error(LineOf(key), "invalid module option " + Quote(k));
                ok = false;
                continue;
            }
            auto rendered = OptionValue(k, value);
            if (!rendered) {
                ok = false;
                continue;
            }
            if (!out.empty()) out += ' ';
            out += std::string(k) + "=" + *rendered;
        }
        if (!ok) return std::nullopt;
        return out;
    }

    // One option value in kernel syntax: strings (quoted when they hold spaces), integers,
    // booleans (1/0, which bool, invbool and int parameters all accept) and arrays of those
    // (comma-separated, the kernel's array-parameter syntax).
    std::optional<std::string> OptionValue(std::string_view option, const toml::node& value,
                                           bool in_array = false) {
        if (const auto* s = value.as_string()) {
            const std::string& v = s->get();
            if (v.find('"') != std::string::npos) {
                Error(LineOf(value), "option " + Quote(option) + " cannot contain '\"'");
                return std::nullopt;
            }
            if (in_array && (v.find(',') != std::string::npos || HasSpace(v) || v.empty())) {
                Error(LineOf(value), "array option " + Quote(option) +
                                         " entries cannot be empty or contain ',' or spaces");
                return std::nullopt;
            }
            return (HasSpace(v) || v.empty()) ? Quote(v) : v;
        }
        if (const auto* i = value.as_integer()) return std::to_string(i->get());
        if (const auto* b = value.as_boolean()) return std::string(b->get() ? "1" : "0");
        if (const auto* a = value.as_array(); a != nullptr && !in_array) {
            if (a->empty()) {
                Error(LineOf(value), "option " + Quote(option) + " is an empty array");
                return std::nullopt;
            }
            std::string out;
            for (const toml::node& item : *a) {
                auto v = OptionValue(option, item, true);
                if (!v) return std::nullopt;
                if (!out.empty()) out += ',';
                out += *v;
            }
            return out;
        }
        Error(LineOf(value), "option " + Quote(option) +
                                 " must be a string, integer, boolean or array, not " +
                                 std::string(TomlTypeName(value)));
        return std::nullopt;
    }

    std::optional<ServiceSpec> Service(const toml::table& table) {
        size_t before = errors_.size();
        ServiceSpec s;
        s.line = LineOf(table);
        bool has_name = false;
        bool has_exec = false;
        for (auto&& [key, node] : table) {
            std::string_view k = key.str();
            if (k == "name") {
                has_name = true;
                auto v = String(node, "name");
                if (!v) continue;
                if (v->empty()) {
                    Error(LineOf(node), "service name is empty");
                } else if (!IsValidUnitName(*v)) {
                    Error(LineOf(node), "invalid service name " + Quote(*v));
                } else {
                    s.name = *v;
                }
            } else if (k == "exec") {
                has_exec = true;
                Exec(node, s.exec);
            } else if (k == "user") {
                auto v = String(node, "user");
                if (!v) continue;
                if (v->empty() || HasSpace(*v) || v->find_first_of(":/") != std::string::npos) {
                    Error(LineOf(node), "invalid user name " + Quote(*v));
                } else {
                    s.user = *v;
                }
            } else if (k == "uid") {
                s.uid = Id(node, "uid");
            } else if (k == "group") {
                auto v = String(node, "group");
                if (!v) continue;
                if (v->empty() || HasSpace(*v) || v->find_first_of(":/") != std::string::npos) {
                    Error(LineOf(node), "invalid group name " + Quote(*v));
                } else {
                    s.group = *v;
                }
            } else if (k == "gid") {
                s.gid = Id(node, "gid");
            } else if (k == "no_new_privileges") {
                const auto* b = node.as_boolean();
                if (b == nullptr) {
                    WrongType(node, "no_new_privileges", "a boolean");
                } else {
                    s.no_new_privileges = b->get();
                }
            } else if (k == "environment") {
                Environment(node, s.environment);
            } else if (k == "after") {
                s.after = NameList(node, "after", "service");
            } else if (k == "privileges") {
                Privileges(node, s.privileges);
            } else if (k == "exit_action") {
                auto v = String(node, "exit_action");
                if (!v) continue;
                if (*v == "none") {
                    s.exit_action = ServiceSpec::ExitAction::kNone;
                } else if (*v == "poweroff") {
                    s.exit_action = ServiceSpec::ExitAction::kPoweroff;
                } else if (*v == "reboot") {
                    s.exit_action = ServiceSpec::ExitAction::kReboot;
                } else {
                    Error(LineOf(node), "exit_action must be \"none\", \"poweroff\" or "
                                        "\"reboot\", not " + Quote(*v));
                }
            } else {
                Error(LineOf(key), "unknown key " + Quote(k) + " in [[service]]");
            }
        }
        if (!has_name) Error(s.line, "[[service]] has no \"name\"");
        if (!has_exec) Error(s.line, "[[service]] has no \"exec\"");
        if (table.contains("user") && table.contains("uid")) {
            Error(s.line, "[[service]] sets both \"user\" and \"uid\"");
        }
        if (table.contains("group") && table.contains("gid")) {
            Error(s.line, "[[service]] sets both \"group\" and \"gid\"");
        }
        if (errors_.size() != before) return std::nullopt;
        return s;
    }

    // A uid or gid: 0..4294967294 (4294967295 is (uid_t)-1, "no change" for the kernel).
    std::optional<uint32_t> Id(const toml::node& node, std::string_view key) {
        const auto* i = node.as_integer();
        if (i == nullptr) {
            WrongType(node, key, "an integer");
        } else if (i->get() < 0 || i->get() >= 4294967295LL) {
            Error(LineOf(node),
                  std::string(key) + " " + std::to_string(i->get()) + " is out of range");
        } else {
            return static_cast<uint32_t>(i->get());
        }
        return std::nullopt;
    }

    void Exec(const toml::node& node, std::vector<std::string>& exec) {
        const toml::array* array = node.as_array();
        if (array == nullptr) return WrongType(node, "exec", "an array of strings");
        if (array->empty()) return Error(LineOf(node), "\"exec\" is empty");
        for (const toml::node& item : *array) {
            const auto* s = item.as_string();
            if (s == nullptr) {
                Error(LineOf(item),
                      "\"exec\" entries must be strings, not " + std::string(TomlTypeName(item)));
                return;
            }
            exec.push_back(s->get());
        }
        if (exec[0].empty() || exec[0][0] != '/') {
            Error(LineOf(node), "\"exec\" program must be an absolute path, not " + Quote(exec[0]));
        }
    }

    // `privileges = ["SeLoadDriverPrivilege", ...]`: known names only, each once; stored in
    // kAllPrivileges order so that logs and records do not depend on how the unit spelled it.
    void Privileges(const toml::node& node, std::vector<Privilege>& out) {
        const toml::array* array = node.as_array();
        if (array == nullptr) return WrongType(node, "privileges", "an array of strings");
        std::map<Privilege, int> seen;
        for (const toml::node& item : *array) {
            const auto* s = item.as_string();
            if (s == nullptr) {
                Error(LineOf(item), "\"privileges\" entries must be strings, not " +
                                        std::string(TomlTypeName(item)));
                continue;
            }
            auto privilege = ParsePrivilege(s->get());
            if (!privilege) {
                std::string known;
                for (Privilege p : kAllPrivileges) {
                    known += (known.empty() ? "" : ", ") + std::string(PrivilegeName(p));
                }
                Error(LineOf(item),
                      "unknown privilege " + Quote(s->get()) + " in \"privileges\" (known: " +
                          known + ")");
                continue;
            }
            auto [it, inserted] = seen.emplace(*privilege, LineOf(item));
            if (!inserted) {
                Error(LineOf(item), "privilege " + Quote(s->get()) +
                                        " is listed twice in \"privileges\"");
            }
        }
        for (Privilege p : kAllPrivileges) {
            if (seen.contains(p)) out.push_back(p);
        }
    }

    void Environment(const toml::node& node,
                     std::vector<std::pair<std::string, std::string>>& env) {
        const toml::table* table = node.as_table();
        if (table == nullptr) return WrongType(node, "environment", "a table");
        for (auto&& [key, value] : *table) {
            std::string_view k = key.str();
            if (!IsValidEnvName(k)) {
                Error(LineOf(key), "invalid environment variable name " + Quote(k));
                continue;
            }
            const auto* s = value.as_string();
            if (s == nullptr) {
                Error(LineOf(value), "environment variable " + Quote(k) +
                                         " must be a string, not " +
                                         std::string(TomlTypeName(value)));
                continue;
            }
            env.emplace_back(std::string(k), s->get());
        }
    }

    void CheckDuplicateModules(const Unit& unit) {
        std::map<std::string, int> seen;
        for (const auto& m : unit.modules) {
            auto [it, inserted] = seen.emplace(NormalizeModuleName(m.name), m.line);
            if (!inserted) {
                Error(m.line, "module " + Quote(m.name) + " is listed twice (first at line " +
                                  std::to_string(it->second) + ")");
            }
        }
    }

    const std::string& path_;
    ConfigErrors& errors_;
    size_t first_error_;
};

// Finds every cycle through active nodes (depth-first in index order, so deterministic). Each
// cycle lists its nodes starting from the one the search entered it by.
std::vector<std::vector<size_t>> FindCycles(const std::vector<std::vector<size_t>>& edges,
                                            const std::vector<bool>& active) {
    enum Color { kWhite, kGray, kBlack };
    std::vector<Color> color(edges.size(), kWhite);
    std::vector<size_t> stack;
    std::vector<std::vector<size_t>> cycles;
    std::function<void(size_t)> visit = [&](size_t u) {
        color[u] = kGray;
        stack.push_back(u);
        for (size_t v : edges[u]) {
            if (!active[v]) continue;
            if (color[v] == kGray) {
                auto start = std::find(stack.begin(), stack.end(), v);
                cycles.emplace_back(start, stack.end());
            } else if (color[v] == kWhite) {
                visit(v);
            }
        }
        stack.pop_back();
        color[u] = kBlack;
    };
    for (size_t i = 0; i < edges.size(); ++i) {
        if (active[i] && color[i] == kWhite) visit(i);
    }
    return cycles;
}

// "a -> b -> c -> a" starting from cycle[pos].
std::string CycleText(const std::vector<size_t>& cycle, size_t pos,
                      const std::function<std::string(size_t)>& name) {
    std::string out;
    for (size_t k = 0; k <= cycle.size(); ++k) {
        if (k > 0) out += " -> ";
        out += name(cycle[(pos + k) % cycle.size()]);
    }
    return out;
}

}  // namespace

bool IsUnitFileName(std::string_view file_name) {
    auto ends_with = [&](std::string_view ext) {
        return file_name.size() > ext.size() &&
               file_name.substr(file_name.size() - ext.size()) == ext;
    };
    return !file_name.empty() && file_name[0] != '.' && (ends_with(".toml") || ends_with(".conf"));
}

std::string UnitNameFromPath(std::string_view path) {
    size_t slash = path.rfind('/');
    std::string_view file = slash == std::string_view::npos ? path : path.substr(slash + 1);
    size_t dot = file.rfind('.');
    if (dot != std::string_view::npos && dot > 0) file = file.substr(0, dot);
    return std::string(file);
}

std::string_view PrivilegeName(Privilege privilege) {
    switch (privilege) {
        case Privilege::kLoadDriver:
            return "SeLoadDriverPrivilege";
        case Privilege::kTcb:
            return "SeTcbPrivilege";
        case Privilege::kDebug:
            return "SeDebugPrivilege";
        case Privilege::kShutdown:
            return "SeShutdownPrivilege";
    }
    return "?";
}

std::optional<Privilege> ParsePrivilege(std::string_view name) {
    for (Privilege p : kAllPrivileges) {
        if (PrivilegeName(p) == name) return p;
    }
    return std::nullopt;
}

std::vector<int> PrivilegeCapabilities(Privilege privilege) {
    switch (privilege) {
        case Privilege::kLoadDriver:
            return {CAP_SYS_MODULE};
        case Privilege::kTcb:
            return {CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_BPF, CAP_PERFMON, CAP_SYSLOG};
        case Privilege::kDebug:
            return {CAP_SYS_PTRACE};
        case Privilege::kShutdown:
            return {CAP_SYS_BOOT};
    }
    return {};
}

bool IsValidUnitName(std::string_view name) {
    if (name.empty() || name.size() > 64) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '@' || c == '-';
    });
}

namespace {

Unit ReadModulesLoadList(const std::string& path, std::string_view text, ConfigErrors& errors) {
    size_t before = errors.size();
    Unit unit;
    unit.name = UnitNameFromPath(path);
    unit.path = path;
    unit.format = UnitFormat::kModulesLoad;
    if (!IsValidUnitName(unit.name)) {
        errors.push_back(
            {path, 1, "invalid unit name " + Quote(unit.name) + " (from the file name)"});
    }
    std::set<std::string> seen;
    int line_no = 0;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        std::string_view line = Trim(text.substr(pos, nl - pos));
        pos = nl + 1;
        ++line_no;
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (!IsValidModuleRef(line)) {
            errors.push_back({path, line_no, "invalid module name " + Quote(line)});
            continue;
        }
        if (!seen.insert(NormalizeModuleName(line)).second) continue;
        unit.modules.push_back({std::string(line), "", false, line_no});
    }
    unit.broken = errors.size() != before;
    return unit;
}

// The unit as far as it could be read, `broken` when it has errors.
Unit ReadUnitFile(const std::string& path, std::string_view text, ConfigErrors& errors) {
    std::string_view p = path;
    if (p.size() > 5 && p.substr(p.size() - 5) == ".conf") {
        return ReadModulesLoadList(path, text, errors);
    }
    return TomlUnitParser(path, errors).Parse(text);
}

std::optional<Unit> Usable(Unit unit) {
    if (unit.broken) return std::nullopt;
    return unit;
}

}  // namespace

std::optional<Unit> ParseTomlUnit(const std::string& path, std::string_view text,
                                  ConfigErrors& errors) {
    return Usable(TomlUnitParser(path, errors).Parse(text));
}

std::optional<Unit> ParseModulesLoadList(const std::string& path, std::string_view text,
                                         ConfigErrors& errors) {
    return Usable(ReadModulesLoadList(path, text, errors));
}

std::optional<Unit> ParseUnitFile(const std::string& path, std::string_view text,
                                  ConfigErrors& errors) {
    return Usable(ReadUnitFile(path, text, errors));
}

UnitSet ParseUnits(const std::vector<UnitSource>& files, ConfigErrors& errors) {
    std::vector<Unit> units;
    for (const UnitSource& f : files) units.push_back(ReadUnitFile(f.path, f.text, errors));
    return LinkUnits(std::move(units), errors);
}

UnitSet LinkUnits(std::vector<Unit> units, ConfigErrors& errors) {
    std::stable_sort(units.begin(), units.end(),
                     [](const Unit& a, const Unit& b) { return a.name < b.name; });
    const size_t n = units.size();
    std::vector<bool> dropped(n, false);
    for (size_t i = 0; i < n; ++i) dropped[i] = units[i].broken;
    auto error = [&](size_t i, int line, std::string message) {
        errors.push_back({units[i].path, line, std::move(message)});
        dropped[i] = true;
    };

    // Duplicate unit names: the first (by name, then input order) is kept.
    std::map<std::string, size_t> by_name;
    for (size_t i = 0; i < n; ++i) {
        auto [it, inserted] = by_name.emplace(units[i].name, i);
        if (!inserted) {
            error(i, 1,
                  "duplicate unit name " + Quote(units[i].name) + " (also defined in " +
                      units[it->second].path + ")");
        }
    }

    // Services: global names, as `after` refers to them across units.
    struct ServiceAt {
        size_t unit;
        size_t index;
    };
    std::map<std::string, ServiceAt> services;
    std::vector<ServiceAt> service_list;
    for (size_t i = 0; i < n; ++i) {
        // A broken unit's services still count as defined (and as duplicates): a reference to
        // one is "whose unit has errors", not "unknown".
        if (dropped[i] && !units[i].broken) continue;
        for (size_t k = 0; k < units[i].services.size(); ++k) {
            const ServiceSpec& s = units[i].services[k];
            auto [it, inserted] = services.emplace(s.name, ServiceAt{i, k});
            if (!inserted) {
                const Unit& other = units[it->second.unit];
                error(i, s.line,
                      "duplicate service name " + Quote(s.name) + " (also defined in " +
                          other.path + ":" + std::to_string(other.services[it->second.index].line) +
                          ")");
            } else {
                service_list.push_back({i, k});
            }
        }
    }

    // One module, one set of options: two units asking for different options for the same
    // module would make the result depend on which loads first.
    struct OptionsAt {
        size_t unit;
        const ModuleSpec* spec;
    };
    std::map<std::string, OptionsAt> options;
    for (size_t i = 0; i < n; ++i) {
        if (dropped[i]) continue;
        for (const ModuleSpec& m : units[i].modules) {
            if (m.options.empty()) continue;
            auto [it, inserted] = options.emplace(NormalizeModuleName(m.name), OptionsAt{i, &m});
            if (!inserted && it->second.spec->options != m.options) {
                error(i, m.line,
                      "module " + Quote(m.name) + " has options " + Quote(m.options) +
                          " here but " + Quote(it->second.spec->options) + " in " +
                          units[it->second.unit].path + ":" +
                          std::to_string(it->second.spec->line));
            }
        }
    }

    // A broken unit is not linked, but what it refers to is checked all the same: an unknown
    // name there is a mistake of its own, not a consequence of the unit's other errors.
    for (size_t i = 0; i < n; ++i) {
        if (!units[i].broken) continue;
        for (const NameRef& ref : units[i].after) {
            if (!by_name.contains(ref.name)) {
                error(i, ref.line, "unknown unit " + Quote(ref.name) + " in \"after\"");
            }
        }
        for (const ServiceSpec& s : units[i].services) {
            for (const NameRef& ref : s.after) {
                if (!services.contains(ref.name)) {
                    error(i, ref.line, "unknown service " + Quote(ref.name) + " in \"after\"");
                }
            }
        }
    }

    // Ordering: unknown or dropped targets, then cycles, until nothing changes (dropping a
    // unit can strand the units ordered after it).
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < n; ++i) {
            if (dropped[i]) continue;
            for (const NameRef& ref : units[i].after) {
                auto it = by_name.find(ref.name);
                if (it == by_name.end()) {
                    error(i, ref.line, "unknown unit " + Quote(ref.name) + " in \"after\"");
                } else if (dropped[it->second]) {
                    error(i, ref.line,
                          "ordered after unit " + Quote(ref.name) + ", which has errors");
                }
            }
            for (const ServiceSpec& s : units[i].services) {
                for (const NameRef& ref : s.after) {
                    auto it = services.find(ref.name);
                    if (it == services.end()) {
                        error(i, ref.line, "unknown service " + Quote(ref.name) + " in \"after\"");
                    } else if (dropped[it->second.unit]) {
                        error(
                            i, ref.line,
                            "ordered after service " + Quote(ref.name) + ", whose unit has errors");
                    }
                }
            }
            changed = changed || dropped[i];
        }
        if (changed) continue;

        // Unit cycles.
        std::vector<std::vector<size_t>> edges(n);
        std::vector<bool> active(n);
        for (size_t i = 0; i < n; ++i) {
            active[i] = !dropped[i];
            if (!active[i]) continue;  // only active units are known to have valid targets
            for (const NameRef& ref : units[i].after) edges[i].push_back(by_name.at(ref.name));
        }
        std::set<size_t> reported;
        auto unit_name = [&](size_t i) { return units[i].name; };
        for (const auto& cycle : FindCycles(edges, active)) {
            for (size_t pos = 0; pos < cycle.size(); ++pos) {
                size_t u = cycle[pos];
                if (!reported.insert(u).second) continue;
                const std::string& next = units[cycle[(pos + 1) % cycle.size()]].name;
                auto ref = std::find_if(units[u].after.begin(), units[u].after.end(),
                                        [&](const NameRef& r) { return r.name == next; });
                error(u, ref->line, "ordering cycle: " + CycleText(cycle, pos, unit_name));
                changed = true;
            }
        }
        if (changed) continue;

        // Service cycles.
        std::map<std::string, size_t> service_index;
        for (size_t k = 0; k < service_list.size(); ++k) {
            const auto& at = service_list[k];
            service_index[units[at.unit].services[at.index].name] = k;
        }
        std::vector<std::vector<size_t>> service_edges(service_list.size());
        std::vector<bool> service_active(service_list.size());
        for (size_t k = 0; k < service_list.size(); ++k) {
            const auto& at = service_list[k];
            service_active[k] = !dropped[at.unit];
            if (!service_active[k]) continue;
            for (const NameRef& ref : units[at.unit].services[at.index].after) {
                service_edges[k].push_back(service_index.at(ref.name));
            }
        }
        auto service_name = [&](size_t k) {
            return units[service_list[k].unit].services[service_list[k].index].name;
        };
        for (const auto& cycle : FindCycles(service_edges, service_active)) {
            for (size_t pos = 0; pos < cycle.size(); ++pos) {
                const ServiceAt& at = service_list[cycle[pos]];
                if (!reported.insert(n + cycle[pos]).second) continue;
                const ServiceSpec& s = units[at.unit].services[at.index];
                std::string next = service_name(cycle[(pos + 1) % cycle.size()]);
                auto ref = std::find_if(s.after.begin(), s.after.end(),
                                        [&](const NameRef& r) { return r.name == next; });
                error(at.unit, ref->line,
                      "service ordering cycle: " + CycleText(cycle, pos, service_name));
                changed = true;
            }
        }
    }

    // Kahn's algorithm, always taking the smallest-named ready unit.
    std::vector<size_t> pending(n, 0);
    std::vector<std::vector<size_t>> dependents(n);
    for (size_t i = 0; i < n; ++i) {
        if (dropped[i]) continue;
        std::set<size_t> targets;
        for (const NameRef& ref : units[i].after) targets.insert(by_name.at(ref.name));
        pending[i] = targets.size();
        for (size_t t : targets) dependents[t].push_back(i);
    }
    std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
    for (size_t i = 0; i < n; ++i) {
        if (!dropped[i] && pending[i] == 0) ready.push(i);
    }
    UnitSet set;
    while (!ready.empty()) {
        size_t i = ready.top();
        ready.pop();
        for (size_t d : dependents[i]) {
            if (--pending[d] == 0) ready.push(d);
        }
        set.units.push_back(std::move(units[i]));
    }
    return set;
}

const Unit* UnitSet::Find(std::string_view name) const {
    for (const Unit& u : units) {
        if (u.name == name) return &u;
    }
    return nullptr;
}

const ServiceSpec* UnitSet::FindService(std::string_view name) const {
    for (const Unit& u : units) {
        for (const ServiceSpec& s : u.services) {
            if (s.name == name) return &s;
        }
    }
    return nullptr;
}

size_t UnitSet::ModuleCount() const {
    size_t count = 0;
    for (const Unit& u : units) count += u.modules.size();
    return count;
}

size_t UnitSet::ServiceCount() const {
    size_t count = 0;
    for (const Unit& u : units) count += u.services.size();
    return count;
}

}  // namespace peinit
