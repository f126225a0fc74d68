#include "peinit/core/root_spec.h"

#include <algorithm>
#include <charconv>

namespace peinit {

namespace {

constexpr std::string_view kTags[] = {"UUID", "PARTUUID", "LABEL", "PARTLABEL"};

std::optional<std::string> LastValue(const Cmdline& cmdline, std::string_view key, bool* seen) {
    std::optional<std::string> value;
    for (const auto& p : cmdline.params) {
        if (p.key != key) continue;
        if (seen) *seen = true;
        value = p.value;  // the last one wins, as in the kernel; a bare flag resets it
    }
    return value;
}

std::optional<int> Seconds(std::string_view text) {
    int v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < 0) return std::nullopt;
    return v;
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

Result<RootSpec> ParseRootSpec(std::string_view text) {
    if (text.empty()) return Err("root= is empty");
    if (text.starts_with("/")) {
        if (text == "/" || text.find("/../") != std::string_view::npos || text.ends_with("/..")) {
            return Err("root=" + std::string(text) + " is not a device path");
        }
        return RootSpec{"", std::string(text)};
    }
    auto eq = text.find('=');
    if (eq != std::string_view::npos) {
        std::string tag(text.substr(0, eq));
        std::string upper = tag;
        std::transform(upper.begin(), upper.end(), upper.begin(),
                       [](char c) { return (c >= 'a' && c <= 'z') ? char(c - 'a' + 'A') : c; });
        std::string value(text.substr(eq + 1));
        if (std::find(std::begin(kTags), std::end(kTags), upper) != std::end(kTags)) {
            if (value.empty()) return Err("root=" + std::string(text) + ": the " + upper + " is empty");
            if (value.find('/') != std::string::npos && (upper == "UUID" || upper == "PARTUUID")) {
                return Err("root=" + std::string(text) +
                           ": PARTNROFF= and other suffixes are not supported");
            }
            return RootSpec{upper, value};
        }
        return Err("root=" + std::string(text) + ": unknown tag " + tag +
                   " (use a /dev path, UUID=, PARTUUID=, LABEL= or PARTLABEL=)");
    }
    return Err("root=" + std::string(text) +
               " is not supported (use a /dev path, UUID=, PARTUUID=, LABEL= or PARTLABEL=)");
}

Result<RootOptions> ParseRootOptions(const Cmdline& cmdline) {
    if (!cmdline.root) return Err("no root= on the kernel command line");
    RootOptions o;
    o.spec = PEINIT_TRY(ParseRootSpec(*cmdline.root));
    if (cmdline.init) o.init = *cmdline.init;
    if (auto types = LastValue(cmdline, "rootfstype", nullptr)) {
        std::string_view rest = *types;
        while (!rest.empty()) {
            auto comma = rest.find(',');
            std::string_view t = rest.substr(0, comma);
            if (!t.empty()) o.fstypes.emplace_back(t);
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    o.flags = LastValue(cmdline, "rootflags", nullptr).value_or("");
    for (const auto& p : cmdline.params) {
        if (p.value) continue;
        if (p.key == "ro") o.read_only = true;
        if (p.key == "rw") o.read_only = false;
    }
    bool rootwait = false;
    auto wait = LastValue(cmdline, "rootwait", &rootwait);
    if (rootwait) {
        if (!wait) {
            o.wait.reset();
        } else if (auto s = Seconds(*wait)) {
            o.wait = std::chrono::seconds(*s);
        } else {
            o.warnings.push_back("rootwait=" + *wait +
                                 ": not a number of seconds, waiting as long as it takes");
            o.wait.reset();
        }
    }
    bool rootdelay = false;
    if (auto delay = LastValue(cmdline, "rootdelay", &rootdelay)) {
        if (auto s = Seconds(*delay)) {
            o.delay = std::chrono::seconds(*s);
        } else {
            o.warnings.push_back("rootdelay=" + *delay + ": not a number of seconds, ignoring");
        }
    }
    return o;
}

bool RootTagValueMatches(const RootSpec& spec, std::string_view probed) {
    if (spec.tag == "UUID" || spec.tag == "PARTUUID") {
        return std::equal(spec.value.begin(), spec.value.end(), probed.begin(), probed.end(),
                          [](char a, char b) { return Lower(a) == Lower(b); });
    }
    return spec.value == probed;
}

}  // namespace peinit
