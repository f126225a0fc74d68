#include "peinit/core/hive.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "peinit/core/toml_util.h"

namespace peinit {

namespace {

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string JoinPath(const std::vector<std::string>& components) {
    std::string out;
    for (const auto& c : components) {
        if (!out.empty()) out += '\\';
        out += c;
    }
    return out;
}

struct HiveValue {
    std::string name;  // as written
    const toml::node* node = nullptr;
    int line = 0;
};

struct HiveKey {
    std::string path;  // as first written
    int line = 0;
    std::map<std::string, HiveValue> values;  // by lower-case name
};

// Flattens the TOML document into registry keys. A table's name may hold several path
// components ('Machine\System\Modules') and tables may nest ([Machine.System.Modules]); both
// spell the same key, matched case-insensitively.
class HiveReader {
  public:
    HiveReader(const std::string& path, ConfigErrors& errors) : path_(path), errors_(errors) {}

    std::map<std::string, HiveKey> Read(const toml::table& root) {
        Walk(root, {});
        return std::move(keys_);
    }

  private:
    void Error(int line, std::string message) {
        errors_.push_back({path_, line, std::move(message)});
    }

    void Walk(const toml::table& table, const std::vector<std::string>& at) {
        for (auto&& [key, node] : table) {
            std::string_view name = key.str();
            if (const auto* sub = node.as_table()) {
                std::vector<std::string> path = at;
                if (!AppendComponents(name, LineOf(key), path)) continue;
                HiveKey& k = keys_[ToLowerAscii(JoinPath(path))];
                if (k.path.empty()) {
                    k.path = JoinPath(path);
                    k.line = LineOf(key);
                }
                Walk(*sub, path);
                continue;
            }
            if (at.empty()) {
                Error(LineOf(key), "value " + Quote(name) + " is outside any registry key");
                continue;
            }
            if (name.empty() || name.find('\\') != std::string_view::npos) {
                Error(LineOf(key), "invalid value name " + Quote(name));
                continue;
            }
            HiveKey& k = keys_[ToLowerAscii(JoinPath(at))];
            auto [it, inserted] = k.values.emplace(
                ToLowerAscii(name), HiveValue{std::string(name), &node, LineOf(node)});
            if (!inserted) {
                Error(LineOf(node), "duplicate value " + Quote(name) + " in " + k.path +
                                        " (also at line " + std::to_string(it->second.line) + ")");
            }
        }
    }

    // Splits 'A\B\C' into components; a single leading backslash (an absolute registry path,
    // '\Machine\...') is allowed, empty components are not.
    bool AppendComponents(std::string_view name, int line, std::vector<std::string>& path) {
        std::string_view rest = name;
        if (path.empty() && !rest.empty() && rest[0] == '\\') rest.remove_prefix(1);
        size_t start = 0;
        while (true) {
            size_t sep = rest.find('\\', start);
            std::string_view part = rest.substr(
                start, sep == std::string_view::npos ? std::string_view::npos : sep - start);
            if (part.empty()) {
                Error(line, "invalid registry key name " + Quote(name));
                return false;
            }
            path.emplace_back(part);
            if (sep == std::string_view::npos) return true;
            start = sep + 1;
        }
    }

    const std::string& path_;
    ConfigErrors& errors_;
    std::map<std::string, HiveKey> keys_;
};

// Interprets the keys peinit owns and checks every value's type and range.
class HiveInterpreter {
  public:
    HiveInterpreter(const std::string& path, ConfigErrors& errors, HiveValues& out)
        : path_(path), errors_(errors), out_(out) {}

    void Run(const std::map<std::string, HiveKey>& keys) {
        const std::string modules = ToLowerAscii(kModulesKeyPath);
        const std::string kernel = ToLowerAscii(kKernelKeyPath);
        const std::string measurement = ToLowerAscii(kMeasurementKeyPath);
        for (const auto& [lower, key] : keys) {
            if (lower == modules) {
                Modules(key);
            } else if (lower == modules + "\\autoloadallowed") {
                NameSubkey(key, out_.autoload_allowed);
            } else if (lower == modules + "\\blacklist") {
                NameSubkey(key, out_.blacklist);
            } else if (lower == measurement) {
                Measurement(key);
            } else if (lower.rfind(modules + "\\", 0) == 0 ||
                       lower.rfind(measurement + "\\", 0) == 0) {
                Error(key.line, "unknown key " + Quote(key.path));
            } else if (lower == kernel) {
                // Other values under Machine\System\Kernel belong to other components.
                if (auto it = key.values.find("modprobe"); it != key.values.end()) {
                    Modprobe(it->second);
                }
            }
            // Keys outside the paths peinit owns are other components' business.
        }
    }

  private:
    void Error(int line, std::string message) {
        errors_.push_back({path_, line, std::move(message)});
    }

    void WrongType(const HiveValue& v, std::string_view expected) {
        Error(v.line, v.name + " must be " + std::string(expected) + ", not " +
                          std::string(TomlTypeName(*v.node)));
    }

    void Modules(const HiveKey& key) {
        for (const auto& [lower, v] : key.values) {
            if (lower == "lockafterboot") {
                LockAfterBoot(v);
            } else if (lower == "autoloadpolicy") {
                Policy(v, ParseAutoLoadPolicy, out_.autoload_policy,
                       "enabled, allow-list or disabled");
            } else if (lower == "signingpolicy") {
                Policy(v, ParseSigningPolicy, out_.signing_policy, "warn or enforce");
            } else if (lower == "autoloadallowed") {
                NameArray(v, out_.autoload_allowed);
            } else if (lower == "blacklist") {
                NameArray(v, out_.blacklist);
            } else if (lower == "moduleworkers") {
                Workers(v);
            } else {
                Error(v.line, "unknown value " + Quote(v.name) + " under " + key.path);
            }
        }
    }

    void Measurement(const HiveKey& key) {
        for (const auto& [lower, v] : key.values) {
            if (lower == "pcr") {
                const auto* i = v.node->as_integer();
                if (i == nullptr) {
                    WrongType(v, "an integer");
                } else if (std::string why = MeasurementPcrProblem(i->get()); !why.empty()) {
                    Error(v.line, v.name + ": PCR " + std::to_string(i->get()) + " " + why);
                } else {
                    out_.measurement_pcr = static_cast<int>(i->get());
                }
            } else if (lower == "measurebootphases") {
                Boolean(v, out_.measure_boot_phases);
            } else {
                Error(v.line, "unknown value " + Quote(v.name) + " under " + key.path);
            }
        }
    }

    void LockAfterBoot(const HiveValue& v) { Boolean(v, out_.lock_after_boot); }

    // A boolean, a DWORD 0/1 or the strings "true"/"false".
    void Boolean(const HiveValue& v, std::optional<bool>& field) {
        if (const auto* b = v.node->as_boolean()) {
            field = b->get();
        } else if (const auto* i = v.node->as_integer()) {
            if (i->get() == 0 || i->get() == 1) {
                field = i->get() == 1;
            } else {
                Error(v.line, v.name + ": unknown value " + std::to_string(i->get()) +
                                  " (expected 0 or 1)");
            }
        } else if (const auto* s = v.node->as_string()) {
            if (EqualsIgnoreCase(s->get(), "true")) {
                field = true;
            } else if (EqualsIgnoreCase(s->get(), "false")) {
                field = false;
            } else {
                Error(v.line, v.name + ": unknown value " + Quote(s->get()) +
                                  " (expected \"true\" or \"false\")");
            }
        } else {
            WrongType(v, "a boolean, 0/1 or \"true\"/\"false\"");
        }
    }

    template <typename T, typename Parser>
    void Policy(const HiveValue& v, Parser parse, std::optional<T>& field, std::string_view words) {
        const auto* s = v.node->as_string();
        if (s == nullptr) return WrongType(v, "a string");
        auto parsed = parse(s->get());
        if (!parsed) {
            return Error(v.line, v.name + ": unknown value " + Quote(s->get()) + " (expected " +
                                     std::string(words) + ")");
        }
        field = *parsed;
    }

    void AddName(const std::string& name, int line, std::string_view what,
                 std::vector<std::string>& list) {
        if (!IsValidModuleName(name)) {
            return Error(line, "invalid module name " + Quote(name) + " in " + std::string(what));
        }
        std::string normal = NormalizeModuleName(name);
        if (std::find(list.begin(), list.end(), normal) == list.end()) list.push_back(normal);
    }

    void NameArray(const HiveValue& v, std::vector<std::string>& list) {
        const auto* array = v.node->as_array();
        if (array == nullptr) return WrongType(v, "an array of module names");
        for (const toml::node& item : *array) {
            const auto* s = item.as_string();
            if (s == nullptr) {
                Error(LineOf(item),
                      v.name + " entries must be strings, not " + std::string(TomlTypeName(item)));
                continue;
            }
            AddName(s->get(), LineOf(item), v.name, list);
        }
    }

    // The registry form: a subkey with one value per module name; the data is not consulted
    // but must be a plain scalar.
    void NameSubkey(const HiveKey& key, std::vector<std::string>& list) {
        for (const auto& [lower, v] : key.values) {
            if (v.node->is_array() || v.node->is_table()) {
                WrongType(v, "a string, integer or boolean (the name is the entry)");
                continue;
            }
            AddName(v.name, v.line, key.path, list);
        }
    }

    void Workers(const HiveValue& v) {
        const auto* i = v.node->as_integer();
        if (i == nullptr) return WrongType(v, "an integer");
        if (i->get() < 1 || i->get() > Hive::kMaxModuleWorkers) {
            return Error(v.line, v.name + ": " + std::to_string(i->get()) +
                                     " is out of range (1.." +
                                     std::to_string(Hive::kMaxModuleWorkers) + ")");
        }
        out_.module_workers = static_cast<int>(i->get());
    }

    void Modprobe(const HiveValue& v) {
        const auto* s = v.node->as_string();
        if (s == nullptr) return WrongType(v, "a string");
        const std::string& p = s->get();
        bool has_space = std::any_of(p.begin(), p.end(),
                                     [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
        if (p.empty() || p[0] != '/' || has_space || p.size() > Hive::kMaxModprobePathLength) {
            return Error(v.line, v.name + ": " + Quote(p) +
                                     " is not an absolute path of at most 255 characters "
                                     "without spaces");
        }
        out_.modprobe = p;
    }

    const std::string& path_;
    ConfigErrors& errors_;
    HiveValues& out_;
};

}  // namespace

std::string MeasurementPcrProblem(int64_t pcr) {
    if (pcr < 0 || pcr > 23) return "does not exist (a TPM has PCRs 0-23)";
    if (pcr <= 7) return "belongs to the firmware and the boot loader (TCG PC Client)";
    if (pcr == 10) return "is IMA's";
    if (pcr == 16) return "is the debug PCR, which anyone can reset";
    if (pcr >= 17 && pcr <= 22) return "is a dynamic-launch PCR, which the OS cannot extend";
    if (pcr == 23) return "is the application PCR, which anyone can reset";
    return "";
}

std::string_view ToString(HiveState state) {
    switch (state) {
        case HiveState::kAbsent:
            return "absent";
        case HiveState::kLoaded:
            return "loaded";
        case HiveState::kFallback:
            return "fallback";
    }
    return "fallback";
}

std::string_view ToString(PolicySource source) {
    switch (source) {
        case PolicySource::kDefault:
            return "default";
        case PolicySource::kHive:
            return "hive";
        case PolicySource::kFallback:
            return "fallback";
        case PolicySource::kCmdline:
            return "cmdline";
    }
    return "default";
}

std::string Hive::FallbackReason() const {
    std::string out;
    for (const auto& e : errors) {
        if (!out.empty()) out += "; ";
        out += e.ToString();
    }
    return out;
}

Hive AbsentHive() { return Hive{}; }

Hive FallbackHive(std::string path, ConfigErrors errors) {
    Hive hive;
    hive.state = HiveState::kFallback;
    hive.path = std::move(path);
    hive.errors = std::move(errors);
    hive.values.lock_after_boot = true;
    hive.values.autoload_policy = AutoLoadPolicy::kDisabled;
    return hive;
}

Hive ParseHive(const std::string& path, std::string_view text, const FileTrust* trust) {
    ConfigErrors errors;
    if (trust != nullptr) {
        if (trust->uid != 0) {
            errors.push_back(
                {path, 0, "untrusted: owned by uid " + std::to_string(trust->uid) + ", not root"});
        }
        if ((trust->mode & 022) != 0) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", trust->mode & 07777);
            errors.push_back(
                {path, 0, std::string("untrusted: group- or world-writable (mode ") + mode + ")"});
        }
    }
    HiveValues values;
    if (auto table = ParseTomlDocument(path, text, errors)) {
        auto keys = HiveReader(path, errors).Read(*table);
        HiveInterpreter(path, errors, values).Run(keys);
    }
    if (!errors.empty()) {
        std::stable_sort(
            errors.begin(), errors.end(),
            [](const ConfigError& a, const ConfigError& b) { return a.line < b.line; });
        return FallbackHive(path, std::move(errors));
    }
    Hive hive;
    hive.state = HiveState::kLoaded;
    hive.path = path;
    hive.values = std::move(values);
    return hive;
}

bool EffectivePolicy::IsBlacklisted(std::string_view module) const {
    std::string normal = NormalizeModuleName(module);
    return std::any_of(blacklist.begin(), blacklist.end(),
                       [&](const BlacklistEntry& e) { return e.module == normal; });
}

EffectivePolicy ComputeEffectivePolicy(const Hive& hive, const Cmdline& cmdline) {
    EffectivePolicy p;
    p.hive_state = hive.state;
    const PolicySource hive_source =
        hive.state == HiveState::kFallback ? PolicySource::kFallback : PolicySource::kHive;
    auto from_hive = [&](bool set) { return set ? hive_source : PolicySource::kDefault; };

    // LockAfterBoot: the command line can only turn it on.
    p.lock_after_boot = {hive.LockAfterBoot(), from_hive(hive.values.lock_after_boot.has_value())};
    if (cmdline.lock == true && !p.lock_after_boot.value) {
        p.lock_after_boot = {true, PolicySource::kCmdline};
    } else if (cmdline.lock == false && p.lock_after_boot.value) {
        p.ignored.push_back("peinit.lock=0 ignored: LockAfterBoot=true from the " +
                            std::string(ToString(p.lock_after_boot.source)) +
                            " cannot be loosened");
    }

    // AutoLoadPolicy: only towards disabled.
    p.autoload = {hive.AutoLoad(), from_hive(hive.values.autoload_policy.has_value())};
    if (cmdline.autoload) {
        if (*cmdline.autoload > p.autoload.value) {
            p.autoload = {*cmdline.autoload, PolicySource::kCmdline};
        } else if (*cmdline.autoload < p.autoload.value) {
            p.ignored.push_back(
                "peinit.autoload=" + std::string(ToString(*cmdline.autoload)) +
                " ignored: AutoLoadPolicy=" + std::string(ToString(p.autoload.value)) +
                " from the " + std::string(ToString(p.autoload.source)) + " is stricter");
        }
    }
    p.autoload_allowed = hive.AutoLoadAllowed();

    // Blacklist: a union.
    for (const auto& m : hive.Blacklist()) p.blacklist.push_back({m, hive_source});
    for (const auto& m : cmdline.blacklist) {
        if (!p.IsBlacklisted(m))
            p.blacklist.push_back({NormalizeModuleName(m), PolicySource::kCmdline});
    }

    // SigningPolicy: module.sig_enforce=1 tightens to enforce; =0 cannot loosen.
    p.signing = {hive.Signing(), from_hive(hive.values.signing_policy.has_value())};
    if (cmdline.sig_enforce == true && p.signing.value != SigningPolicy::kEnforce) {
        p.signing = {SigningPolicy::kEnforce, PolicySource::kCmdline};
    } else if (cmdline.sig_enforce == false && p.signing.value == SigningPolicy::kEnforce) {
        p.ignored.push_back("module.sig_enforce=0 ignored: SigningPolicy=enforce from the " +
                            std::string(ToString(p.signing.source)) + " cannot be loosened");
    }

    p.modprobe = {hive.Modprobe(), from_hive(hive.values.modprobe.has_value())};

    p.workers = {hive.values.module_workers, from_hive(hive.values.module_workers.has_value())};
    if (cmdline.workers) p.workers = {cmdline.workers, PolicySource::kCmdline};
    return p;
}

}  // namespace peinit
