#include "peinit/verify/reference.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "peinit/core/toml_util.h"

namespace peinit::verify {

namespace {

class Reader {
  public:
    Reader(const std::string& path, ConfigErrors& errors) : path_(path), errors_(errors) {}

    void Error(int line, std::string message) {
        errors_.push_back({path_, line, std::move(message)});
    }

    // Reports every key of `table` not in `known`.
    void OnlyKeys(const toml::table& table, const std::string& where,
                  std::initializer_list<std::string_view> known) {
        for (auto&& [key, node] : table) {
            bool ok = false;
            for (auto k : known) ok = ok || key.str() == k;
            if (!ok) {
                Error(LineOf(key), "unknown key \"" + std::string(key.str()) + "\" in " + where);
            }
        }
    }

    const toml::table* Table(const toml::table& root, std::string_view name, bool required) {
        const toml::node* node = root.get(name);
        if (node == nullptr) {
            if (required) Error(0, "missing table [" + std::string(name) + "]");
            return nullptr;
        }
        if (!node->is_table()) {
            Error(LineOf(*node),
                  std::string(name) + " must be a table, not " + std::string(TomlTypeName(*node)));
            return nullptr;
        }
        return node->as_table();
    }

    std::optional<std::string> String(const toml::table& t, std::string_view table,
                                      std::string_view key, bool required, int table_line) {
        const toml::node* node = t.get(key);
        if (node == nullptr) {
            if (required) Error(table_line, Missing(table, key));
            return std::nullopt;
        }
        if (const auto* s = node->as_string()) {
            if (s->get().empty()) {
                Error(LineOf(*node), Name(table, key) + " must not be empty");
                return std::nullopt;
            }
            return s->get();
        }
        Error(LineOf(*node),
              Name(table, key) + " must be a string, not " + std::string(TomlTypeName(*node)));
        return std::nullopt;
    }

    std::optional<bool> Bool(const toml::table& t, std::string_view table, std::string_view key) {
        const toml::node* node = t.get(key);
        if (node == nullptr) return std::nullopt;
        if (const auto* b = node->as_boolean()) return b->get();
        Error(LineOf(*node),
              Name(table, key) + " must be a boolean, not " + std::string(TomlTypeName(*node)));
        return std::nullopt;
    }

    std::optional<std::vector<std::string>> Strings(const toml::table& t, std::string_view table,
                                                    std::string_view key, bool required,
                                                    int table_line) {
        const toml::node* node = t.get(key);
        if (node == nullptr) {
            if (required) Error(table_line, Missing(table, key));
            return std::nullopt;
        }
        const auto* array = node->as_array();
        if (array == nullptr) {
            Error(LineOf(*node), Name(table, key) + " must be an array of strings, not " +
                                     std::string(TomlTypeName(*node)));
            return std::nullopt;
        }
        std::vector<std::string> out;
        std::set<std::string> seen;
        for (const auto& item : *array) {
            const auto* s = item.as_string();
            if (s == nullptr || s->get().empty()) {
                Error(LineOf(item), Name(table, key) + " must hold non-empty strings only");
                return std::nullopt;
            }
            if (!seen.insert(s->get()).second) {
                Error(LineOf(item), Name(table, key) + ": \"" + s->get() + "\" is listed twice");
            }
            out.push_back(s->get());
        }
        return out;
    }

    static std::string Name(std::string_view table, std::string_view key) {
        return std::string(table) + "." + std::string(key);
    }
    static std::string Missing(std::string_view table, std::string_view key) {
        return "[" + std::string(table) + "] lacks the required key \"" + std::string(key) + "\"";
    }

  private:
    const std::string& path_;
    ConfigErrors& errors_;
};

bool IsLowerHex(const std::string& s) {
    return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

int TableLine(const toml::table& root, std::string_view name) {
    for (auto&& [key, node] : root) {
        if (key.str() == name) return LineOf(key);
    }
    return 0;
}

}  // namespace

std::optional<Reference> ParseReference(const std::string& path, const std::string& text,
                                        ConfigErrors& errors) {
    std::size_t before = errors.size();
    auto doc = ParseTomlDocument(path, text, errors);
    if (!doc) return std::nullopt;
    Reader r(path, errors);
    Reference ref;
    ref.path = path;
    r.OnlyKeys(*doc, "the reference",
               {"attestation_key", "image", "modules", "lock", "policy", "log"});

    if (const auto* ak = r.Table(*doc, "attestation_key", true)) {
        int line = TableLine(*doc, "attestation_key");
        r.OnlyKeys(*ak, "[attestation_key]", {"name", "public_pem"});
        if (auto name = r.String(*ak, "attestation_key", "name", true, line)) {
            if (!IsLowerHex(*name) || name->size() != 68 || !name->starts_with("000b")) {
                r.Error(LineOf(*ak->get("name")),
                        "attestation_key.name must be a SHA-256 TPM name: \"000b\" and 64 "
                        "lowercase hex digits");
            }
            ref.ak_name = *name;
        }
        if (auto pem = r.String(*ak, "attestation_key", "public_pem", true, line)) {
            if (pem->find("-----BEGIN PUBLIC KEY-----") == std::string::npos) {
                r.Error(LineOf(*ak->get("public_pem")),
                        "attestation_key.public_pem must be a PEM public key "
                        "(-----BEGIN PUBLIC KEY-----)");
            }
            ref.ak_public_pem = *pem;
        }
    }
    if (const auto* image = r.Table(*doc, "image", false)) {
        int line = TableLine(*doc, "image");
        r.OnlyKeys(*image, "[image]", {"kernel_release", "key_fingerprints"});
        ref.kernel_release = r.String(*image, "image", "kernel_release", false, line);
        ref.image_key_fingerprints = r.Strings(*image, "image", "key_fingerprints", false, line);
    }
    if (const auto* modules = r.Table(*doc, "modules", true)) {
        int line = TableLine(*doc, "modules");
        r.OnlyKeys(*modules, "[modules]", {"signers", "allowed", "exact"});
        if (auto signers = r.Strings(*modules, "modules", "signers", true, line)) {
            for (const auto& s : *signers) {
                if (!IsLowerHex(s) || s.size() != 64) {
                    r.Error(LineOf(*modules->get("signers")),
                            "modules.signers: \"" + s +
                                "\" is not a key fingerprint (64 lowercase hex digits)");
                }
            }
            ref.signers = *signers;
        }
        ref.allowed_modules = r.Strings(*modules, "modules", "allowed", false, line);
        ref.exact_modules = r.Bool(*modules, "modules", "exact").value_or(false);
        if (ref.exact_modules && !ref.allowed_modules) {
            r.Error(LineOf(*modules->get("exact")), "modules.exact = true needs modules.allowed");
        }
    }
    if (const auto* lock = r.Table(*doc, "lock", false)) {
        int line = TableLine(*doc, "lock");
        r.OnlyKeys(*lock, "[lock]", {"required", "mechanisms"});
        ref.lock_required = r.Bool(*lock, "lock", "required").value_or(true);
        if (auto m = r.Strings(*lock, "lock", "mechanisms", false, line)) {
            for (const auto& name : *m) {
                if (name != "syscall" && name != "fallback") {
                    r.Error(
                        LineOf(*lock->get("mechanisms")),
                        "lock.mechanisms: unknown mechanism \"" + name + "\" (syscall, fallback)");
                }
            }
            if (m->empty()) {
                r.Error(LineOf(*lock->get("mechanisms")), "lock.mechanisms must not be empty");
            }
            ref.lock_mechanisms = *m;
        }
    }
    if (const auto* policy = r.Table(*doc, "policy", false)) {
        int line = TableLine(*doc, "policy");
        r.OnlyKeys(*policy, "[policy]", {"lock_after_boot", "autoload_policy", "signing_policy"});
        ref.lock_after_boot = r.Bool(*policy, "policy", "lock_after_boot");
        ref.autoload_policy = r.String(*policy, "policy", "autoload_policy", false, line);
        ref.signing_policy = r.String(*policy, "policy", "signing_policy", false, line);
    }
    if (const auto* log = r.Table(*doc, "log", false)) {
        r.OnlyKeys(*log, "[log]", {"require_leave_initrd"});
        ref.require_leave_initrd = r.Bool(*log, "log", "require_leave_initrd").value_or(false);
    }
    if (errors.size() != before) return std::nullopt;
    return ref;
}

std::optional<Reference> LoadReference(const std::string& path, ConfigErrors& errors) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        errors.push_back({path, 0, std::string("cannot read: ") + std::strerror(errno)});
        return std::nullopt;
    }
    std::ostringstream text;
    text << in.rdbuf();
    return ParseReference(path, text.str(), errors);
}

}  // namespace peinit::verify
