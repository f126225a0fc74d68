#include "peinit/core/policy_record.h"

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <sstream>

namespace peinit {

namespace pt = boost::property_tree;

namespace {

toml::table SourcedValue(std::string_view value, PolicySource source) {
    return toml::table{{"value", std::string(value)}, {"source", std::string(ToString(source))}};
}

std::optional<PolicySource> ParseSource(std::string_view text) {
    for (auto s : {PolicySource::kDefault, PolicySource::kHive, PolicySource::kFallback,
                   PolicySource::kCmdline}) {
        if (ToString(s) == text) return s;
    }
    return std::nullopt;
}

std::optional<HiveState> ParseHiveState(std::string_view text) {
    for (auto s : {HiveState::kAbsent, HiveState::kLoaded, HiveState::kFallback}) {
        if (ToString(s) == text) return s;
    }
    return std::nullopt;
}

// Reads "NAME.value" through `parse` and "NAME.source".
template <typename T, typename Parse>
Result<Sourced<T>> ReadSourced(const pt::ptree& tree, const std::string& name, Parse parse) {
    auto value = tree.get_optional<std::string>(name + ".value");
    if (!value) return Err(name + ".value is missing");
    auto parsed = parse(*value);
    if (!parsed) return Err(name + ".value: unknown value \"" + *value + "\"");
    auto source = ParseSource(tree.get<std::string>(name + ".source", ""));
    if (!source) return Err(name + ".source is missing or unknown");
    return Sourced<T>{*parsed, *source};
}

std::vector<std::string> Strings(const pt::ptree& tree, const std::string& name) {
    std::vector<std::string> out;
    if (auto list = tree.get_child_optional(name)) {
        for (const auto& [key, item] : *list) out.push_back(item.get_value<std::string>());
    }
    return out;
}

}  // namespace

toml::table ToToml(const PolicyRecord& r) {
    const EffectivePolicy& p = r.policy;
    toml::array errors;
    for (const auto& e : r.hive_errors) errors.push_back(e);
    toml::array allowed;
    for (const auto& m : p.autoload_allowed) allowed.push_back(m);
    toml::array blacklist;
    for (const auto& b : p.blacklist) {
        blacklist.push_back(
            toml::table{{"module", b.module}, {"source", std::string(ToString(b.source))}});
    }
    toml::array ignored;
    for (const auto& i : p.ignored) ignored.push_back(i);
    toml::table record{
        {"version", 1},
        {"hive", toml::table{{"state", std::string(ToString(r.hive_state))},
                             {"path", r.hive_path},
                             {"errors", std::move(errors)}}},
        {"lock_after_boot",
         toml::table{{"value", p.lock_after_boot.value},
                     {"source", std::string(ToString(p.lock_after_boot.source))}}},
        {"autoload", SourcedValue(ToString(p.autoload.value), p.autoload.source)},
        {"autoload_allowed", std::move(allowed)},
        {"blacklist", std::move(blacklist)},
        {"signing", SourcedValue(ToString(p.signing.value), p.signing.source)},
        {"ignored", std::move(ignored)},
        {"modload_root", r.modload_root},
    };
    if (p.modprobe.value) record.insert("modprobe", *p.modprobe.value);
    if (p.workers.value) record.insert("workers", static_cast<int64_t>(*p.workers.value));
    return record;
}

Result<PolicyRecord> ParsePolicyRecord(const std::string& json) {
    pt::ptree tree;
    try {
        std::istringstream in(json);
        pt::read_json(in, tree);
    } catch (const pt::json_parser_error& e) {
        return Err("policy.json: line " + std::to_string(e.line()) + ": " + e.message());
    } catch (const std::exception& e) {
        return Err(std::string("policy.json: ") + e.what());
    }
    auto fail = [](const Error& e) { return Err("policy.json: " + e.message()); };
    if (tree.get<int>("version", 0) != 1) return Err("policy.json: version is not 1");
    PolicyRecord r;
    EffectivePolicy& p = r.policy;
    auto lock = ReadSourced<bool>(tree, "lock_after_boot", [](const std::string& v) {
        return v == "true" ? std::optional(true) : v == "false" ? std::optional(false) : std::nullopt;
    });
    if (!lock) return fail(lock.error());
    p.lock_after_boot = *lock;
    auto autoload = ReadSourced<AutoLoadPolicy>(tree, "autoload", ParseAutoLoadPolicy);
    if (!autoload) return fail(autoload.error());
    p.autoload = *autoload;
    auto signing = ReadSourced<SigningPolicy>(tree, "signing", ParseSigningPolicy);
    if (!signing) return fail(signing.error());
    p.signing = *signing;
    for (const auto& m : Strings(tree, "autoload_allowed")) {
        if (!IsValidModuleName(m)) return Err("policy.json: autoload_allowed: bad name \"" + m + "\"");
        p.autoload_allowed.push_back(m);
    }
    if (auto list = tree.get_child_optional("blacklist")) {
        for (const auto& [key, item] : *list) {
            std::string module = item.get<std::string>("module", "");
            auto source = ParseSource(item.get<std::string>("source", ""));
            if (!IsValidModuleName(module) || !source) {
                return Err("policy.json: blacklist: bad entry \"" + module + "\"");
            }
            p.blacklist.push_back({module, *source});
        }
    }
    p.ignored = Strings(tree, "ignored");
    if (auto m = tree.get_optional<std::string>("modprobe")) p.modprobe.value = *m;
    if (auto w = tree.get_optional<int>("workers")) p.workers.value = *w;
    auto state = ParseHiveState(tree.get<std::string>("hive.state", ""));
    if (!state) return Err("policy.json: hive.state is missing or unknown");
    r.hive_state = p.hive_state = *state;
    r.hive_path = tree.get<std::string>("hive.path", "");
    r.hive_errors = Strings(tree, "hive.errors");
    r.modload_root = tree.get<std::string>("modload_root", "");
    if (!r.modload_root.starts_with("/")) return Err("policy.json: modload_root is not absolute");
    return r;
}

}  // namespace peinit
