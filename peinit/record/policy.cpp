#include "peinit/record/policy.h"

#include <type_traits>

#include "peinit/core/json.h"
#include "peinit/record/record.h"

namespace peinit {

namespace {

toml::table SourcedValue(std::string_view value, PolicySource source) {
    return toml::table{{"value", std::string(value)}, {"source", std::string(ToString(source))}};
}

constexpr PolicySource kSources[] = {PolicySource::kDefault, PolicySource::kHive,
                                     PolicySource::kFallback, PolicySource::kCmdline};
constexpr HiveState kHiveStates[] = {HiveState::kAbsent, HiveState::kLoaded, HiveState::kFallback};

std::optional<PolicySource> ParseSource(std::string_view text) {
    return ParseByName(kSources, text);
}

std::optional<HiveState> ParseHiveState(std::string_view text) {
    return ParseByName(kHiveStates, text);
}

// Reads the object NAME: {"value": ..., "source": ...}, both required; the value is a `Raw`
// (a string naming an enum value, or a boolean) turned into a T by `parse`.
template <typename Raw, typename T, typename Parse>
void ReadSourced(RecordFields& f, std::string_view name, Sourced<T>& out, Parse parse) {
    if (!f.ok()) return;
    bool present = false;
    f.Object(name, out, [&](RecordFields& o, Sourced<T>& v) {
        present = true;
        Raw value{};
        std::string source;
        o.Required("value", value).Required("source", source);
        if (!o.ok()) return;
        if (auto parsed = parse(value)) {
            v.value = *parsed;
        } else {
            if constexpr (std::is_same_v<Raw, std::string>) {
                o.Fail("value", "unknown value \"" + value + "\"");
            } else {
                o.Fail("value", "unknown value");
            }
        }
        if (auto src = ParseSource(source)) {
            v.source = *src;
        } else {
            o.Fail("source", "unknown source \"" + source + "\"");
        }
    });
    if (f.ok() && !present) f.Fail("", "no \"" + std::string(name) + "\"");
}

std::optional<bool> AnyBool(bool v) { return v; }

}  // namespace

std::string PolicyRecord::ToJson() const {
    const PolicyRecord& r = *this;
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
    return FormatJson(record);
}

Result<PolicyRecord> PolicyRecord::FromJson(std::string_view text, const std::string& file) {
    auto r = PEINIT_TRY(
        ReadRecordWith<PolicyRecord>(text, file, kVersion, [](RecordFields& f, PolicyRecord& r) {
            EffectivePolicy& p = r.policy;
            ReadSourced<bool>(f, "lock_after_boot", p.lock_after_boot, AnyBool);
            ReadSourced<std::string>(f, "autoload", p.autoload, ParseAutoLoadPolicy);
            ReadSourced<std::string>(f, "signing", p.signing, ParseSigningPolicy);
            f.Get("autoload_allowed", p.autoload_allowed)
                .Objects("blacklist", p.blacklist,
                         [](RecordFields& b, BlacklistEntry& e) {
                             std::string source;
                             b.Required("module", e.module).Required("source", source);
                             if (auto src = ParseSource(source)) {
                                 e.source = *src;
                             } else {
                                 b.Fail("source", "unknown source \"" + source + "\"");
                             }
                         })
                .Get("ignored", p.ignored)
                .Get("modprobe", p.modprobe.value)
                .Get("workers", p.workers.value)
                .Object("hive", r,
                        [](RecordFields& h, PolicyRecord& v) {
                            std::string state;
                            h.Required("state", state)
                                .Get("path", v.hive_path)
                                .Get("errors", v.hive_errors);
                            if (auto st = ParseHiveState(state)) {
                                v.hive_state = *st;
                            } else {
                                h.Fail("state", "unknown value \"" + state + "\"");
                            }
                        })
                .Required("modload_root", r.modload_root);
        }));
    for (const auto& m : r.policy.autoload_allowed) {
        if (!IsValidModuleName(m)) return Err(file + ": autoload_allowed: bad name \"" + m + "\"");
    }
    for (const auto& b : r.policy.blacklist) {
        if (!IsValidModuleName(b.module)) {
            return Err(file + ": blacklist: bad entry \"" + b.module + "\"");
        }
    }
    r.policy.hive_state = r.hive_state;
    if (!r.modload_root.starts_with("/")) return Err(file + ": modload_root is not absolute");
    return r;
}

}  // namespace peinit
