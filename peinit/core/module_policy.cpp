#include "peinit/core/module_policy.h"

#include <algorithm>

namespace peinit {

namespace {

char LowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return LowerAscii(x) == LowerAscii(y);
           });
}

std::string ToLowerAscii(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = LowerAscii(c);
    return out;
}

std::optional<AutoLoadPolicy> ParseAutoLoadPolicy(std::string_view text) {
    if (EqualsIgnoreCase(text, "enabled")) return AutoLoadPolicy::kEnabled;
    if (EqualsIgnoreCase(text, "allow-list")) return AutoLoadPolicy::kAllowList;
    if (EqualsIgnoreCase(text, "disabled")) return AutoLoadPolicy::kDisabled;
    return std::nullopt;
}

std::string_view ToString(AutoLoadPolicy policy) {
    switch (policy) {
        case AutoLoadPolicy::kEnabled:
            return "enabled";
        case AutoLoadPolicy::kAllowList:
            return "allow-list";
        case AutoLoadPolicy::kDisabled:
            return "disabled";
    }
    return "disabled";
}

std::optional<SigningPolicy> ParseSigningPolicy(std::string_view text) {
    if (EqualsIgnoreCase(text, "warn")) return SigningPolicy::kWarn;
    if (EqualsIgnoreCase(text, "enforce")) return SigningPolicy::kEnforce;
    return std::nullopt;
}

std::string_view ToString(SigningPolicy policy) {
    return policy == SigningPolicy::kEnforce ? "enforce" : "warn";
}

std::string NormalizeModuleName(std::string_view name) {
    std::string out(name);
    std::replace(out.begin(), out.end(), '-', '_');
    return out;
}

bool IsValidModuleName(std::string_view name) {
    if (name.empty() || name.size() > 55) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

bool IsValidModuleParamName(std::string_view name) {
    if (name.empty() || name[0] == '-' || name[0] == '.') return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-' || c == '.';
    });
}

bool IsValidModuleRef(std::string_view name) {
    if (name.empty() || name.size() > 255) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return c > ' ' && c < 0x7f && c != '"' && c != '\'' && c != '/' && c != ',' && c != '=';
    });
}

}  // namespace peinit
