// libFuzzer target: the kernel command-line parser (peinit/core/cmdline.h).
//
// ParseCmdline never fails, so beyond "no crash, no UB" this checks what cmdline.h promises:
// the parsed view agrees with TokenizeCmdline, typed fields hold only valid values, lists are
// normalised and de-duplicated, ModuleOptions() gives back exactly the module's parameters when
// the kernel tokenises it again, and parameters re-rendered on one line tokenise to themselves.

#include <algorithm>
#include <set>

#include "peinit/core/cmdline.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using peinit::KernelParam;

bool IsKernelSpace(char c) {
    auto u = static_cast<unsigned char>(c);
    return u == ' ' || (u >= '\t' && u <= '\r') || u == 0xA0;
}

bool HasSpace(std::string_view s) { return std::any_of(s.begin(), s.end(), IsKernelSpace); }

std::string Show(const std::vector<KernelParam>& params) {
    std::string out;
    for (const auto& p : params) {
        out += "[" + p.key + (p.value ? "=" + *p.value : "") + "]";
    }
    return out;
}

template <typename T>
bool Unique(const std::vector<T>& list) {
    return std::set<T>(list.begin(), list.end()).size() == list.size();
}

// Parameters whose text needs no escaping the kernel cannot do: no quotes anywhere, no empty
// or spaced keys. Those render to one line that must tokenise back to the same parameters.
void CheckRoundTrip(const std::vector<KernelParam>& params) {
    std::string line;
    for (const auto& p : params) {
        if (p.key.empty() || HasSpace(p.key) || p.key.find('"') != std::string::npos) return;
        if (p.value && p.value->find('"') != std::string::npos) return;
        if (!line.empty()) line += ' ';
        line += p.key;
        if (p.value) line += HasSpace(*p.value) ? "=\"" + *p.value + "\"" : "=" + *p.value;
    }
    auto again = peinit::TokenizeCmdline(line);
    FUZZ_CHECK(again == params,
               "rendered as \"" + line + "\": " + Show(params) + " became " + Show(again));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text = peinit::fuzz::AsText(data, size);
    peinit::Cmdline c = peinit::ParseCmdline(text);

    std::vector<std::string> init_args;
    bool saw_dashes = false;
    FUZZ_CHECK(peinit::TokenizeCmdline(text, &init_args, &saw_dashes) == c.params,
               "ParseCmdline and TokenizeCmdline disagree");
    FUZZ_CHECK(init_args == c.init_args, "init arguments differ");
    FUZZ_CHECK(saw_dashes || init_args.empty(), "init arguments without a \"--\"");
    for (const auto& p : c.params) {
        FUZZ_CHECK(!(p.key == "--" && !p.value), "a bare \"--\" is a parameter");
    }

    for (const auto& f : c.flags) {
        FUZZ_CHECK(f.find('.') == std::string::npos, "flag \"" + f + "\" has a '.'");
        FUZZ_CHECK(c.HasFlag(f), "HasFlag(\"" + f + "\") is false");
    }
    for (const auto& m : c.blacklist) {
        FUZZ_CHECK(peinit::IsValidModuleName(m), "invalid blacklisted module \"" + m + "\"");
        FUZZ_CHECK(peinit::NormalizeModuleName(m) == m, "blacklist entry not normalised: " + m);
    }
    FUZZ_CHECK(Unique(c.blacklist), "blacklist has duplicates");
    for (const auto& m : c.modules_load) {
        FUZZ_CHECK(peinit::IsValidModuleRef(m), "invalid modules_load entry \"" + m + "\"");
    }
    FUZZ_CHECK(Unique(c.modules_load), "modules_load has duplicates");
    if (c.workers) {
        FUZZ_CHECK(*c.workers >= 1 && *c.workers <= peinit::Cmdline::kMaxWorkers,
                   "workers out of range: " + std::to_string(*c.workers));
    }
    for (const auto& d : c.diagnostics) FUZZ_CHECK(!d.message.empty(), "empty diagnostic");

    // ModuleOptions(m) is appended to modprobe.d options, which the kernel tokenises with the
    // same next_arg(): it must give back this module's parameters, in order, and nothing else.
    std::set<std::string> modules;
    for (const auto& mp : c.module_params) {
        FUZZ_CHECK(peinit::IsValidModuleName(mp.module), "invalid module \"" + mp.module + "\"");
        FUZZ_CHECK(peinit::NormalizeModuleName(mp.module) == mp.module,
                   "module not normalised: " + mp.module);
        FUZZ_CHECK(!mp.param.empty(), "empty parameter name for " + mp.module);
        modules.insert(mp.module);
    }
    for (const auto& module : modules) {
        std::vector<KernelParam> expected;
        for (const auto& mp : c.module_params) {
            if (mp.module == module) expected.push_back({mp.param, mp.value});
        }
        std::string options = c.ModuleOptions(module);
        bool dashes = false;
        auto got = peinit::TokenizeCmdline(options, nullptr, &dashes);
        FUZZ_CHECK(!dashes && got == expected, "ModuleOptions(\"" + module + "\") = \"" + options +
                                                   "\" tokenises to " + Show(got) + ", expected " +
                                                   Show(expected));
    }

    CheckRoundTrip(c.params);
    return 0;
}
