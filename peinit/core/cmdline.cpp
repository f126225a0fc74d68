#include "peinit/core/cmdline.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace peinit {

namespace {

// The kernel's isspace() (lib/ctype.c): ASCII whitespace plus 0xA0, which its Latin-1 table
// marks as a space. Matching it keeps peinit's view identical to the kernel's.
bool KernelIsSpace(char c) {
    auto u = static_cast<unsigned char>(c);
    return u == ' ' || (u >= '\t' && u <= '\r') || u == 0xA0;
}

char* SkipSpaces(char* p) {
    while (*p != '\0' && KernelIsSpace(*p)) ++p;
    return p;
}

// A line-for-line port of next_arg() from kernel/params.c (Linux 6.1). It works in place on a
// NUL-terminated buffer, exactly like the original, so quoting corner cases match. Sets
// `unterminated` when the parameter ended inside an open quote (the kernel accepts that
// silently; peinit reports it).
char* NextArg(char* args, char** param, char** val, bool* unterminated) {
    unsigned int i, equals = 0;
    int in_quote = 0, quoted = 0;

    if (*args == '"') {
        args++;
        in_quote = 1;
        quoted = 1;
    }

    for (i = 0; args[i]; i++) {
        if (KernelIsSpace(args[i]) && !in_quote) break;
        if (equals == 0) {
            if (args[i] == '=') equals = i;
        }
        if (args[i] == '"') in_quote = !in_quote;
    }
    *unterminated = in_quote != 0;

    *param = args;
    if (!equals) {
        *val = nullptr;
    } else {
        args[equals] = '\0';
        *val = args + equals + 1;

        // Don't include quotes in value.
        if (**val == '"') {
            (*val)++;
            if (args[i - 1] == '"') args[i - 1] = '\0';
        }
    }
    if (quoted && i > 0 && args[i - 1] == '"') args[i - 1] = '\0';

    if (args[i]) {
        args[i] = '\0';
        args += i + 1;
    } else {
        args += i;
    }

    // Chew up trailing spaces.
    return SkipSpaces(args);
}

// The kernel compares parameter names with '-' and '_' as the same character (parameq()).
bool KeyIs(std::string_view key, std::string_view expected) {
    if (key.size() != expected.size()) return false;
    for (size_t i = 0; i < key.size(); ++i) {
        char a = key[i] == '-' ? '_' : key[i];
        char b = expected[i] == '-' ? '_' : expected[i];
        if (a != b) return false;
    }
    return true;
}

bool KeyHasPrefix(std::string_view key, std::string_view prefix) {
    return key.size() >= prefix.size() && KeyIs(key.substr(0, prefix.size()), prefix);
}

std::string Render(const KernelParam& p) { return p.value ? p.key + "=" + *p.value : p.key; }

std::vector<std::string> SplitCommas(std::string_view text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) comma = text.size();
        if (comma > start) out.emplace_back(text.substr(start, comma - start));
        start = comma + 1;
    }
    return out;
}

void AppendUnique(std::vector<std::string>& list, std::string item) {
    if (std::find(list.begin(), list.end(), item) == list.end()) list.push_back(std::move(item));
}

// peinit's own booleans: the kernel's words plus yes/no/true/false; a bare key means true.
std::optional<bool> ParsePeinitBool(const std::optional<std::string>& value) {
    if (!value) return true;
    for (std::string_view t : {"1", "yes", "true", "on"}) {
        if (EqualsIgnoreCase(*value, t)) return true;
    }
    for (std::string_view f : {"0", "no", "false", "off"}) {
        if (EqualsIgnoreCase(*value, f)) return false;
    }
    return std::nullopt;
}

// "/dev/NAME[/NAME...]": no empty, "." or ".." component.
bool IsDevicePath(std::string_view path) {
    if (!path.starts_with("/dev/")) return false;
    for (size_t start = 5;;) {
        size_t slash = path.find('/', start);
        std::string_view part = path.substr(start, slash == std::string_view::npos ? slash : slash - start);
        if (part.empty() || part == "." || part == "..") return false;
        if (slash == std::string_view::npos) return true;
        start = slash + 1;
    }
}

class Interpreter {
  public:
    explicit Interpreter(Cmdline& out) : out_(out) {}

    void Apply(const KernelParam& p) {
        const std::string& key = p.key;
        if (KeyHasPrefix(key, "peinit.")) return ApplyPeinit(p);
        if (KeyIs(key, "modprobe.blacklist") || KeyIs(key, "module_blacklist")) {
            return AddBlacklist(p);
        }
        if (KeyIs(key, "modules_load") || KeyIs(key, "rd.modules_load")) return AddModulesLoad(p);
        if (KeyIs(key, "root")) return SetString(p, out_.root);
        if (KeyIs(key, "init")) return SetString(p, out_.init);
        if (KeyIs(key, "module.sig_enforce")) {
            // The kernel's bool parameter: a bare key means true.
            auto v = p.value ? ParseKernelBool(*p.value) : std::optional<bool>(true);
            if (!v) return Diagnose(p, "not a boolean (expected 1/0, y/n, on/off)");
            out_.sig_enforce = *v;
        }
        // Namespaces that belong to peinit, kmod or dracut are not module options.
        if (KeyHasPrefix(key, "modprobe.") || KeyHasPrefix(key, "rd.")) return;

        size_t dot = key.find('.');
        if (dot == std::string::npos) {
            if (!p.value) out_.flags.push_back(key);
            return;
        }
        std::string module = key.substr(0, dot);
        std::string param = key.substr(dot + 1);
        if (!IsValidModuleName(module) || !IsValidModuleParamName(param)) {
            return Diagnose(p, "malformed module parameter (expected module.param=value)");
        }
        // ModuleOptions() hands the value on in the kernel's parameter syntax, whose quoting
        // cannot carry a '"' inside a value (units refuse it too).
        if (p.value && p.value->find('"') != std::string::npos) {
            return Diagnose(p, "module parameter value cannot contain '\"'");
        }
        out_.module_params.push_back({NormalizeModuleName(module), param, p.value});
    }

  private:
    void Diagnose(const KernelParam& p, std::string message) {
        out_.diagnostics.push_back({Render(p), std::move(message)});
    }

    void SetString(const KernelParam& p, std::optional<std::string>& field) {
        if (!p.value || p.value->empty()) return Diagnose(p, "needs a value");
        field = *p.value;
    }

    void ApplyPeinit(const KernelParam& p) {
        const std::string& key = p.key;
        // The command line only tightens: a value that cannot be read is taken as the
        // strictest one (a typo must not leave a machine looser than its owner asked for).
        if (KeyIs(key, "peinit.lock")) {
            auto v = ParsePeinitBool(p.value);
            if (!v) Diagnose(p, "not a boolean (expected 0 or 1): taken as 1, the strictest");
            out_.lock = out_.lock.value_or(false) || v.value_or(true);
        } else if (KeyIs(key, "peinit.autoload")) {
            auto v = p.value ? ParseAutoLoadPolicy(*p.value) : std::nullopt;
            if (!v) {
                Diagnose(p, "expected enabled, allow-list or disabled: taken as disabled, the "
                            "strictest");
            }
            const AutoLoadPolicy a = v.value_or(AutoLoadPolicy::kDisabled);
            out_.autoload = out_.autoload ? std::max(*out_.autoload, a) : a;
        } else if (KeyIs(key, "peinit.emergency")) {
            if (p.value && *p.value == "shell") {
                out_.emergency = EmergencyAction::kShell;
            } else if (p.value && *p.value == "poweroff") {
                out_.emergency = EmergencyAction::kPoweroff;
            } else {
                Diagnose(p, "expected shell or poweroff");
            }
        } else if (KeyIs(key, "peinit.workers")) {
            int n = 0;
            const std::string& s = p.value.value_or("");
            auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
            if (s.empty() || ec != std::errc() || end != s.data() + s.size() || n < 1 ||
                n > Cmdline::kMaxWorkers) {
                return Diagnose(
                    p, "not an integer between 1 and " + std::to_string(Cmdline::kMaxWorkers));
            }
            out_.workers = n;
        } else if (KeyIs(key, "peinit.collect")) {
            if (!p.value || !IsDevicePath(*p.value)) {
                return Diagnose(p, "expected a device path under /dev, e.g. /dev/ttyS1");
            }
            out_.collect = *p.value;
        } else {
            Diagnose(p, "unknown peinit parameter");
        }
    }

    void AddBlacklist(const KernelParam& p) {
        if (!p.value || p.value->empty()) return Diagnose(p, "empty module list");
        for (auto& name : SplitCommas(*p.value)) {
            if (!IsValidModuleName(name)) {
                Diagnose(p, "invalid module name \"" + name + "\", ignoring it");
                continue;
            }
            AppendUnique(out_.blacklist, NormalizeModuleName(name));
        }
    }

    void AddModulesLoad(const KernelParam& p) {
        if (!p.value || p.value->empty()) return Diagnose(p, "empty module list");
        for (auto& name : SplitCommas(*p.value)) {
            if (!IsValidModuleRef(name)) {
                Diagnose(p, "invalid module name \"" + name + "\", ignoring it");
                continue;
            }
            AppendUnique(out_.modules_load, name);
        }
    }

    Cmdline& out_;
};

}  // namespace

std::optional<bool> ParseKernelBool(std::string_view text) {
    // kstrtobool(): decided by the first character, "on"/"off" by the second.
    if (text.empty()) return std::nullopt;
    switch (text[0]) {
        case 'y':
        case 'Y':
        case 't':
        case 'T':
        case '1':
            return true;
        case 'n':
        case 'N':
        case 'f':
        case 'F':
        case '0':
            return false;
        case 'o':
        case 'O':
            if (text.size() >= 2 && (text[1] == 'n' || text[1] == 'N')) return true;
            if (text.size() >= 2 && (text[1] == 'f' || text[1] == 'F')) return false;
            return std::nullopt;
        default:
            return std::nullopt;
    }
}

namespace {

// TokenizeCmdline() plus the parameter (if any) that ended inside an open quote.
std::vector<KernelParam> Tokenize(std::string_view text, std::vector<std::string>* init_args,
                                  bool* saw_dashes,
                                  std::optional<KernelParam>* unterminated_param) {
    // next_arg() works on a writable NUL-terminated buffer; an embedded NUL would end the
    // kernel's string, and cannot appear in /proc/cmdline, so treat it as a separator.
    std::string buf(text);
    std::replace(buf.begin(), buf.end(), '\0', ' ');

    std::vector<KernelParam> params;
    std::vector<KernelParam> after_dashes;
    bool seen_dashes = false;
    char* args = SkipSpaces(buf.data());
    while (*args != '\0') {
        char* param = nullptr;
        char* val = nullptr;
        bool unterminated = false;
        args = NextArg(args, &param, &val, &unterminated);
        if (val == nullptr && std::strcmp(param, "--") == 0) {
            // The kernel hands the words after the first `--` to init (parse_args() stops at
            // `--` again there, so a second `--` ends init's arguments too).
            if (seen_dashes) break;
            seen_dashes = true;
            continue;
        }
        KernelParam p{param, val ? std::optional<std::string>(val) : std::nullopt};
        if (unterminated && unterminated_param != nullptr) *unterminated_param = p;
        (seen_dashes ? after_dashes : params).push_back(std::move(p));
    }
    if (saw_dashes != nullptr) *saw_dashes = seen_dashes;
    if (init_args != nullptr) {
        init_args->clear();
        for (const auto& p : after_dashes) init_args->push_back(Render(p));
    }
    return params;
}

}  // namespace

std::vector<KernelParam> TokenizeCmdline(std::string_view text, std::vector<std::string>* init_args,
                                         bool* saw_dashes) {
    return Tokenize(text, init_args, saw_dashes, nullptr);
}

Cmdline ParseCmdline(std::string_view text) {
    Cmdline out;
    std::optional<KernelParam> unterminated;
    out.params = Tokenize(text, &out.init_args, nullptr, &unterminated);
    Interpreter interpreter(out);
    for (const auto& p : out.params) interpreter.Apply(p);
    // An unterminated quote swallows the rest of the line into one parameter, which the kernel
    // accepts silently; say so, since the parameters after it were lost.
    if (unterminated) {
        out.diagnostics.push_back({Render(*unterminated), "unterminated quote"});
    }
    return out;
}

bool Cmdline::HasFlag(std::string_view flag) const {
    return std::any_of(flags.begin(), flags.end(), [&](const std::string& f) { return f == flag; });
}

std::string Cmdline::ModuleOptions(std::string_view module) const {
    std::string wanted = NormalizeModuleName(module);
    std::string out;
    for (const auto& mp : module_params) {
        if (mp.module != wanted) continue;
        if (!out.empty()) out += ' ';
        out += mp.param;
        if (!mp.value) continue;
        bool needs_quotes =
            std::any_of(mp.value->begin(), mp.value->end(), KernelIsSpace) || mp.value->empty();
        out += needs_quotes ? "=\"" + *mp.value + "\"" : "=" + *mp.value;
    }
    return out;
}

}  // namespace peinit
