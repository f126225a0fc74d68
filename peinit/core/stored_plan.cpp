#include "peinit/core/stored_plan.h"

#include <toml++/toml.h>

#include <filesystem>
#include <sstream>

#include "peinit/core/toml_util.h"

namespace peinit {

namespace {

namespace fs = std::filesystem;

// Records the answers of another db.
class RecordingModuleDb : public ModuleDb {
  public:
    RecordingModuleDb(ModuleDb& db, std::string root) : db_(db), root_(std::move(root)) {}

    Result<std::vector<std::string>> Lookup(std::string_view name_or_alias) override {
        auto names = PEINIT_TRY(db_.Lookup(name_or_alias));
        facts_.lookups[std::string(name_or_alias)] = names;
        return names;
    }
    Result<ModuleRecord> Describe(std::string_view name) override {
        ModuleRecord record = PEINIT_TRY(db_.Describe(name));
        ModuleRecord stored = record;
        if (!stored.path.empty()) {
            fs::path rel = fs::path(stored.path).lexically_relative(root_);
            if (rel.empty() || rel.native().starts_with(".."))
                return Err("module " + record.name + " resolves outside " + root_ + ": " +
                           record.path);
            stored.path = rel.string();
        }
        facts_.modules[std::string(name)] = std::move(stored);
        return record;
    }
    std::vector<std::string> TakeWarnings() override {
        auto warnings = db_.TakeWarnings();
        facts_.warnings.insert(facts_.warnings.end(), warnings.begin(), warnings.end());
        return warnings;
    }

    ModuleFacts& facts() { return facts_; }

  private:
    ModuleDb& db_;
    std::string root_;
    ModuleFacts facts_;
};

toml::array Strings(const std::vector<std::string>& items) {
    toml::array out;
    for (const auto& i : items) out.push_back(i);
    return out;
}

// Field readers that name the file and the key of a missing or mistyped value.
class Reader {
  public:
    explicit Reader(const std::string& file) : file_(file) {}

    Result<std::string> Str(const toml::table& t, std::string_view key) const {
        const auto* v = t.get_as<std::string>(key);
        if (v == nullptr) return Missing(t, key, "a string");
        return v->get();
    }
    Result<bool> Bool(const toml::table& t, std::string_view key) const {
        const auto* v = t.get_as<bool>(key);
        if (v == nullptr) return Missing(t, key, "a boolean");
        return v->get();
    }
    Result<std::vector<std::string>> List(const toml::table& t, std::string_view key) const {
        const auto* a = t.get_as<toml::array>(key);
        if (a == nullptr) return Missing(t, key, "an array of strings");
        std::vector<std::string> out;
        for (const auto& n : *a) {
            const auto* s = n.as_string();
            if (s == nullptr) return Missing(t, key, "an array of strings");
            out.push_back(s->get());
        }
        return out;
    }
    Result<const toml::array*> Tables(const toml::table& t, std::string_view key) const {
        const auto* a = t.get_as<toml::array>(key);
        if (a == nullptr) return static_cast<const toml::array*>(nullptr);
        if (!a->is_array_of_tables()) return Missing(t, key, "an array of tables");
        return a;
    }

  private:
    Unexpected Missing(const toml::table& t, std::string_view key, const char* what) const {
        return Err(file_ + ":" + std::to_string(LineOf(t)) + ": \"" + std::string(key) +
                   "\" must be " + what);
    }
    const std::string& file_;
};

}  // namespace

std::string StoredPlan::ToToml() const {
    toml::array lookups;
    for (const auto& [name, modules] : facts.lookups)
        lookups.push_back(toml::table{{"name", name}, {"modules", Strings(modules)}});
    toml::array modules;
    for (const auto& [name, r] : facts.modules) {
        modules.push_back(toml::table{
            {"name", name},
            {"canonical", r.name},
            {"path", r.path},
            {"builtin", r.builtin},
            {"file_present", r.file_present},
            {"hard_deps", Strings(r.hard_deps)},
            {"soft_pre", Strings(r.soft_pre)},
            {"soft_post", Strings(r.soft_post)},
            {"options", r.options},
            {"denied_by", r.denied_by},
            {"install_command", r.install_command},
        });
    }
    toml::table doc{{"version", version},
                    {"kernel_release", kernel_release},
                    {"warnings", Strings(facts.warnings)}};
    if (!lookups.empty()) doc.insert("lookup", std::move(lookups));
    if (!modules.empty()) doc.insert("module", std::move(modules));
    std::ostringstream out;
    out << toml::toml_formatter{doc} << "\n";
    return out.str();
}

Result<StoredPlan> StoredPlan::FromToml(std::string_view text, const std::string& file) {
    ConfigErrors errors;
    auto doc = ParseTomlDocument(file, text, errors);
    if (!doc) return Err(errors.empty() ? file + ": not TOML" : errors.front().ToString());
    StoredPlan plan;
    const auto* version = doc->get_as<int64_t>("version");
    if (version == nullptr) return Err(file + ": no \"version\"");
    if (*version > kVersion)
        return Err(file + ": version " + std::to_string(version->get()) +
                   " is newer than this reader's " + std::to_string(kVersion) +
                   " (the image was built by a newer peinit-image)");
    plan.version = static_cast<int>(version->get());
    Reader read(file);
    plan.kernel_release = PEINIT_TRY(read.Str(*doc, "kernel_release"));
    plan.facts.warnings = PEINIT_TRY(read.List(*doc, "warnings"));
    if (const toml::array* lookups = PEINIT_TRY(read.Tables(*doc, "lookup"))) {
        for (const auto& node : *lookups) {
            const toml::table& t = *node.as_table();
            plan.facts.lookups[PEINIT_TRY(read.Str(t, "name"))] = PEINIT_TRY(read.List(t, "modules"));
        }
    }
    if (const toml::array* modules = PEINIT_TRY(read.Tables(*doc, "module"))) {
        for (const auto& node : *modules) {
            const toml::table& t = *node.as_table();
            ModuleRecord r;
            std::string name = PEINIT_TRY(read.Str(t, "name"));
            r.name = PEINIT_TRY(read.Str(t, "canonical"));
            r.path = PEINIT_TRY(read.Str(t, "path"));
            r.builtin = PEINIT_TRY(read.Bool(t, "builtin"));
            r.file_present = PEINIT_TRY(read.Bool(t, "file_present"));
            r.hard_deps = PEINIT_TRY(read.List(t, "hard_deps"));
            r.soft_pre = PEINIT_TRY(read.List(t, "soft_pre"));
            r.soft_post = PEINIT_TRY(read.List(t, "soft_post"));
            r.options = PEINIT_TRY(read.Str(t, "options"));
            r.denied_by = PEINIT_TRY(read.Str(t, "denied_by"));
            r.install_command = PEINIT_TRY(read.Str(t, "install_command"));
            if (fs::path(r.path).is_absolute() || r.path.starts_with(".."))
                return Err(file + ":" + std::to_string(LineOf(t)) + ": module " + name +
                           ": path must be relative to the root, not " + r.path);
            plan.facts.modules[name] = std::move(r);
        }
    }
    return plan;
}

Result<RecordedPlan> RecordPlan(ModuleDb& db, const PlanInput& input, const std::string& root,
                                std::string kernel_release) {
    RecordingModuleDb recording(db, root);
    RecordedPlan out;
    out.plan = PEINIT_TRY(BuildPlan(recording, input));
    out.stored.kernel_release = std::move(kernel_release);
    out.stored.facts = std::move(recording.facts());
    return out;
}

StoredModuleDb::StoredModuleDb(const ModuleFacts& facts, const std::string& root)
    : facts_(facts), root_(root) {}

Result<std::vector<std::string>> StoredModuleDb::Lookup(std::string_view name_or_alias) {
    auto it = facts_.lookups.find(std::string(name_or_alias));
    if (it == facts_.lookups.end())
        return Err("the stored plan has no answer for \"" + std::string(name_or_alias) + "\"");
    return it->second;
}

Result<ModuleRecord> StoredModuleDb::Describe(std::string_view name) {
    auto it = facts_.modules.find(std::string(name));
    if (it == facts_.modules.end())
        return Err("the stored plan does not describe module " + std::string(name));
    ModuleRecord r = it->second;
    if (!r.path.empty()) r.path = (fs::path(root_) / r.path).string();
    return r;
}

std::vector<std::string> StoredModuleDb::TakeWarnings() {
    if (warned_) return {};
    warned_ = true;
    return facts_.warnings;
}

}  // namespace peinit
