// libFuzzer target: the registry hive parser (peinit/core/hive.h, units/HIVE.md) and the
// effective policy it gives with a kernel command line.
//
// Input: one byte choosing the file's trust ('0': root, 0644; 'u': owned by uid 1000; 'w':
// mode 0666; anything else: no trust check, as `peinit check` does), then the hive text. When
// the text starts with "#!", the rest of that line (a TOML comment, so the hive is unchanged)
// is also parsed as the kernel command line for ComputeEffectivePolicy.
//
// Checks what hive.h promises: a hive is loaded with no errors or falls back with at least one
// then LockAfterBoot and AutoLoadPolicy=disabled), every error names the file and a line
// (only trust problems concern the whole file), loaded values are valid, normalised and
// de-duplicated, a loaded hive written back canonically parses to the same values, and the
// command line only tightens.

#include <algorithm>
#include <set>
#include <sstream>

#include "peinit/core/hive.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/toml_write.h"

namespace {

using namespace peinit;

bool ValidNameList(const std::vector<std::string>& list) {
    for (const auto& m : list) {
        if (!IsValidModuleName(m) || NormalizeModuleName(m) != m) return false;
    }
    return std::set<std::string>(list.begin(), list.end()).size() == list.size();
}

toml::array Array(const std::vector<std::string>& list) {
    toml::array a;
    for (const auto& s : list) a.push_back(s);
    return a;
}

// The values in the hive's canonical spelling (units/HIVE.md).
std::string Canonical(const HiveValues& v) {
    toml::table modules;
    if (v.lock_after_boot) modules.insert("LockAfterBoot", *v.lock_after_boot);
    if (v.autoload_policy) {
        modules.insert("AutoLoadPolicy", std::string(ToString(*v.autoload_policy)));
    }
    if (!v.autoload_allowed.empty()) modules.insert("AutoLoadAllowed", Array(v.autoload_allowed));
    if (!v.blacklist.empty()) modules.insert("Blacklist", Array(v.blacklist));
    if (v.signing_policy) modules.insert("SigningPolicy", std::string(ToString(*v.signing_policy)));
    if (v.module_workers) modules.insert("ModuleWorkers", *v.module_workers);
    toml::table system{{"Modules", modules}};
    if (v.modprobe) system.insert("Kernel", toml::table{{"Modprobe", *v.modprobe}});
    toml::table root{{"Machine", toml::table{{"System", system}}}};
    std::ostringstream out;
    out << fuzz::Formatted(root);
    return out.str();
}

bool SameValues(const HiveValues& a, const HiveValues& b) {
    return a.lock_after_boot == b.lock_after_boot && a.autoload_policy == b.autoload_policy &&
           a.autoload_allowed == b.autoload_allowed && a.blacklist == b.blacklist &&
           a.signing_policy == b.signing_policy && a.modprobe == b.modprobe &&
           a.module_workers == b.module_workers;
}

void CheckPolicy(const Hive& hive, const Cmdline& cmdline) {
    EffectivePolicy p = ComputeEffectivePolicy(hive, cmdline);
    FUZZ_CHECK(p.hive_state == hive.state, "hive state not carried over");
    FUZZ_CHECK(p.lock_after_boot.value >= hive.LockAfterBoot(), "command line unlocked");
    FUZZ_CHECK(!(cmdline.lock == true) || p.lock_after_boot.value, "peinit.lock=1 ignored");
    FUZZ_CHECK(p.autoload.value >= hive.AutoLoad(), "command line loosened AutoLoadPolicy");
    FUZZ_CHECK(!cmdline.autoload || p.autoload.value >= *cmdline.autoload,
               "peinit.autoload= ignored");
    FUZZ_CHECK(p.signing.value >= hive.Signing(), "command line loosened SigningPolicy");
    FUZZ_CHECK(p.autoload_allowed == hive.AutoLoadAllowed(), "allow-list changed");
    std::vector<std::string> modules;
    for (const auto& e : p.blacklist) modules.push_back(e.module);
    FUZZ_CHECK(ValidNameList(modules), "effective blacklist invalid or duplicated");
    for (const auto& m : hive.Blacklist()) FUZZ_CHECK(p.IsBlacklisted(m), "lost " + m);
    for (const auto& m : cmdline.blacklist) FUZZ_CHECK(p.IsBlacklisted(m), "lost " + m);
    auto workers = cmdline.workers ? cmdline.workers : hive.values.module_workers;
    FUZZ_CHECK(p.workers.value == workers, "wrong worker count");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    FileTrust trust;
    const FileTrust* check = &trust;
    bool trusted = true;
    switch (data[0]) {
        case '0':
            break;
        case 'u':
            trust.uid = 1000;
            trusted = false;
            break;
        case 'w':
            trust.mode = 0666;
            trusted = false;
            break;
        default:
            check = nullptr;
    }
    std::string_view text = fuzz::AsText(data + 1, size - 1);
    const std::string path = "/etc/peinit/hive.toml";
    Hive hive = ParseHive(path, text, check);

    const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n')) + 1;
    for (const auto& e : hive.errors) {
        FUZZ_CHECK(e.path == path, "error without the file: " + e.ToString());
        FUZZ_CHECK(!e.message.empty(), "empty error message");
        bool whole_file = e.message.rfind("untrusted: ", 0) == 0;
        FUZZ_CHECK(whole_file ? e.line == 0 : e.line >= 1 && e.line <= lines,
                   "error without a line in the file: " + e.ToString());
    }
    if (hive.state == HiveState::kLoaded) {
        FUZZ_CHECK(hive.errors.empty() && trusted, "loaded with errors or untrusted");
        FUZZ_CHECK(ValidNameList(hive.AutoLoadAllowed()), "invalid AutoLoadAllowed");
        FUZZ_CHECK(ValidNameList(hive.Blacklist()), "invalid Blacklist");
        if (auto w = hive.values.module_workers) {
            FUZZ_CHECK(*w >= 1 && *w <= Hive::kMaxModuleWorkers, "ModuleWorkers out of range");
        }
        if (const auto& m = hive.Modprobe()) {
            FUZZ_CHECK(!m->empty() && (*m)[0] == '/' && m->size() <= Hive::kMaxModprobePathLength,
                       "invalid Modprobe \"" + *m + "\"");
        }
        std::string canonical = Canonical(hive.values);
        Hive again = ParseHive(path, canonical, nullptr);
        FUZZ_CHECK(again.state == HiveState::kLoaded && SameValues(again.values, hive.values),
                   "canonical form does not round-trip:\n" + canonical + again.FallbackReason());
    } else {
        FUZZ_CHECK(hive.state == HiveState::kFallback, "ParseHive returned an absent hive");
        FUZZ_CHECK(!hive.errors.empty() && !hive.FallbackReason().empty(),
                   "fallback without a reason");
        FUZZ_CHECK(hive.LockAfterBoot() && hive.AutoLoad() == AutoLoadPolicy::kDisabled,
                   "fallback is not hardened");
    }

    std::string_view cmdline;
    if (text.substr(0, 2) == "#!") cmdline = text.substr(2, text.find('\n') - 2);
    CheckPolicy(hive, ParseCmdline(cmdline));
    return 0;
}
