#include "initramfs/image_definition.h"

#include <sys/stat.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <fstream>
#include <sstream>

#include "peinit/core/toml_util.h"

namespace peinit::image {

const char* KernelKindName(KernelKind k) {
    switch (k) {
        case KernelKind::kPeinit: return "peinit";
        case KernelKind::kDebian: return "debian";
        case KernelKind::kRelease: return "release";
        case KernelKind::kRunning: return "running";
    }
    return "?";
}

const char* ModuleModeName(ModuleMode m) {
    switch (m) {
        case ModuleMode::kUnits: return "units";
        case ModuleMode::kHost: return "host";
        case ModuleMode::kGeneric: return "generic";
    }
    return "?";
}

bool IsKernelRelease(const std::string& s) {
    if (s.empty() || s.size() > 64 || s[0] < '0' || s[0] > '9') return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '+' || c == '~' || c == '-';
    });
}

namespace {

std::string AbsoluteUnder(const std::string& dir, const std::string& p) {
    if (!p.empty() && p[0] == '/') return p;
    if (dir.empty()) return p;
    return dir + "/" + p;
}

using peinit::LineOf;

// Collects every problem of one definition so the user sees them all at once.
class Parser {
  public:
    Parser(std::string file, std::string dir) : file_(std::move(file)), dir_(std::move(dir)) {}

    void Fail(int line, const std::string& msg) {
        errors_.push_back({line, file_ + ":" + std::to_string(line) + ": " + msg});
        broken_.insert(key_);
    }
    // Every error in file order (toml++ iterates a table's keys sorted by name), leaving out
    // what may be a consequence of a syntax error (TomlDocument::Independent).
    std::vector<std::string> errors(const TomlDocument& doc) const {
        auto sorted = errors_;
        std::stable_sort(sorted.begin(), sorted.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
        std::vector<std::string> out;
        for (const auto& [line, msg] : sorted)
            if (doc.Independent(line)) out.push_back(msg);
        return out;
    }
    const std::set<std::string>& broken() const { return broken_; }

    std::optional<std::string> String(const toml::node& n, const std::string& key) {
        if (auto v = n.value<std::string>(); v && n.is_string()) return *v;
        Fail(LineOf(n), "\"" + key + "\" must be a string");
        return std::nullopt;
    }

    std::optional<int64_t> Integer(const toml::node& n, const std::string& key) {
        if (n.is_integer()) return n.as_integer()->get();
        Fail(LineOf(n), "\"" + key + "\" must be an integer");
        return std::nullopt;
    }

    std::vector<Located<std::string>> StringList(const toml::node& n, const std::string& key) {
        std::vector<Located<std::string>> out;
        const toml::array* arr = n.as_array();
        if (arr == nullptr) {
            Fail(LineOf(n), "\"" + key + "\" must be an array of strings");
            return out;
        }
        for (const toml::node& e : *arr) {
            if (!e.is_string()) {
                Fail(LineOf(e), "\"" + key + "\" entries must be strings");
                continue;
            }
            std::string s = e.as_string()->get();
            if (s.empty()) {
                Fail(LineOf(e), "\"" + key + "\" entries must not be empty");
                continue;
            }
            out.push_back({s, LineOf(e)});
        }
        return out;
    }

    // A path that must exist, of the given kind.
    std::optional<std::string> ExistingPath(const std::string& rel, int line,
                                            const std::string& key, bool want_dir) {
        std::string abs = AbsoluteUnder(dir_, rel);
        struct stat st;
        if (::stat(abs.c_str(), &st) != 0) {
            Fail(line, "\"" + key + "\": " + abs + " does not exist");
            return std::nullopt;
        }
        if (want_dir && !S_ISDIR(st.st_mode)) {
            Fail(line, "\"" + key + "\": " + abs + " is not a directory");
            return std::nullopt;
        }
        if (!want_dir && !S_ISREG(st.st_mode)) {
            Fail(line, "\"" + key + "\": " + abs + " is not a regular file");
            return std::nullopt;
        }
        return abs;
    }

    void ParseFiles(const toml::node& n, ImageDefinition& def) {
        const toml::array* arr = n.as_array();
        if (arr == nullptr) {
            Fail(LineOf(n), "\"files\" must be an array of tables ([[files]])");
            return;
        }
        for (const toml::node& e : *arr) {
            const toml::table* t = e.as_table();
            if (t == nullptr) {
                Fail(LineOf(e), "\"files\" entries must be tables with src, dst and mode");
                continue;
            }
            ExtraFile f;
            f.line = LineOf(e);
            size_t before = errors_.size();
            // Every field is checked, so all of an entry's mistakes are named at once.
            for (auto&& [k, v] : *t) {
                std::string key(k.str());
                if (key == "src") {
                    if (auto s = String(v, "files.src")) f.src = *s;
                } else if (key == "dst") {
                    if (auto s = String(v, "files.dst")) f.dst = *s;
                } else if (key == "mode") {
                    if (v.is_integer()) {
                        int64_t m = v.as_integer()->get();
                        if (m < 0 || m > 07777)
                            Fail(LineOf(v), "\"files.mode\" must be between 0 and 0o7777");
                        else
                            f.mode = static_cast<uint32_t>(m);
                    } else if (v.is_string()) {
                        const std::string& s = v.as_string()->get();
                        char* end = nullptr;
                        unsigned long m = std::strtoul(s.c_str(), &end, 8);
                        if (s.empty() || *end != '\0' || m > 07777)
                            Fail(LineOf(v), "\"files.mode\" \"" + s + "\" is not an octal mode");
                        else
                            f.mode = static_cast<uint32_t>(m);
                    } else {
                        Fail(LineOf(v), "\"files.mode\" must be an integer (0o755) or a string");
                    }
                } else {
                    Fail(static_cast<int>(k.source().begin.line),
                         "unknown key \"" + key + "\" in [[files]] (expected src, dst, mode)");
                }
            }
            if (!t->contains("src")) Fail(f.line, "[[files]] entry without \"src\"");
            if (!t->contains("dst")) Fail(f.line, "[[files]] entry without \"dst\"");
            if (!f.dst.empty()) {
                if (f.dst[0] != '/')
                    Fail(LineOf(*t->get("dst")),
                         "\"files.dst\" \"" + f.dst + "\" must be an absolute path");
                else if (auto norm = NormalizeImagePath(f.dst); !norm)
                    Fail(LineOf(*t->get("dst")), "\"files.dst\": " + norm.error().message());
            }
            std::optional<std::string> abs;
            if (!f.src.empty()) abs = ExistingPath(f.src, LineOf(*t->get("src")), "files.src", false);
            if (errors_.size() != before) continue;
            f.src = *abs;
            def.files.push_back(std::move(f));
        }
    }

    // `packages = ["a.pkg"]` or `[[packages]]` tables with `path` and `expect`.
    void ParsePackages(const toml::node& n, ImageDefinition& def) {
        const toml::array* arr = n.as_array();
        if (arr == nullptr) {
            Fail(LineOf(n), "\"packages\" must be an array of paths or tables ([[packages]])");
            return;
        }
        for (const toml::node& e : *arr) {
            ExtraPackage p;
            p.line = LineOf(e);
            std::string rel;
            if (e.is_string()) {
                rel = e.as_string()->get();
            } else if (const toml::table* t = e.as_table()) {
                bool ok = true;
                for (auto&& [k, v] : *t) {
                    std::string key(k.str());
                    if (key == "path") {
                        if (auto s = String(v, "packages.path"))
                            rel = *s;
                        else
                            ok = false;
                    } else if (key == "expect") {
                        auto s = String(v, "packages.expect");
                        if (s && *s == "valid") {
                            p.expect = PackageExpect::kValid;
                        } else if (s && *s == "rejected") {
                            p.expect = PackageExpect::kRejected;
                        } else {
                            if (s)
                                Fail(LineOf(v),
                                     "\"packages.expect\" must be \"valid\" or "
                                     "\"rejected\", not \"" +
                                         *s + "\"");
                            ok = false;
                        }
                    } else {
                        Fail(static_cast<int>(k.source().begin.line),
                             "unknown key \"" + key + "\" in [[packages]] (expected path, expect)");
                        ok = false;
                    }
                }
                if (!ok) continue;
            } else {
                Fail(p.line, "\"packages\" entries must be paths or tables with path and expect");
                continue;
            }
            if (rel.empty()) {
                Fail(p.line, "[[packages]] entry without \"path\"");
                continue;
            }
            if (!rel.ends_with(".pkg")) {
                Fail(p.line, "\"packages\": " + rel + " must end in .pkg");
                continue;
            }
            auto abs = ExistingPath(rel, p.line, "packages", false);
            if (!abs) continue;
            p.path = *abs;
            def.packages.push_back(std::move(p));
        }
    }

    // A list of existing regular files with a given suffix.
    std::vector<Located<std::string>> FileList(const toml::node& n, const std::string& key,
                                               const std::string& suffix) {
        std::vector<Located<std::string>> out;
        for (auto& f : StringList(n, key)) {
            if (!f.value.ends_with(suffix)) {
                Fail(f.line, "\"" + key + "\": " + f.value + " must end in " + suffix);
                continue;
            }
            if (auto abs = ExistingPath(f.value, f.line, key, false)) out.push_back({*abs, f.line});
        }
        return out;
    }

    void ParseBoot(const toml::node& n, ImageDefinition& def) {
        const toml::table* t = n.as_table();
        if (t == nullptr) {
            Fail(LineOf(n), "\"boot\" must be a table");
            return;
        }
        for (auto&& [k, v] : *t) {
            std::string key(k.str());
            if (key == "memory") {
                if (auto i = Integer(v, "boot.memory")) {
                    if (*i < 64 || *i > 65536)
                        Fail(LineOf(v), "\"boot.memory\" must be 64..65536 (MiB)");
                    else
                        def.boot.memory_mb = static_cast<int>(*i);
                }
            } else if (key == "smp") {
                if (auto i = Integer(v, "boot.smp")) {
                    if (*i < 1 || *i > 64)
                        Fail(LineOf(v), "\"boot.smp\" must be 1..64");
                    else
                        def.boot.smp = static_cast<int>(*i);
                }
            } else if (key == "qemu_args") {
                for (auto& a : StringList(v, "boot.qemu_args"))
                    def.boot.qemu_args.push_back(a.value);
            } else {
                Fail(static_cast<int>(k.source().begin.line),
                     "unknown key \"" + key + "\" in [boot] (expected memory, smp, qemu_args)");
            }
        }
    }

    void Parse(const toml::table& root, ImageDefinition& def) {
        bool have_kernel = false;
        for (auto&& [k, v] : root) {
            std::string key(k.str());
            key_ = key;
            int line = static_cast<int>(k.source().begin.line);
            if (key == "description") {
                if (auto s = String(v, key)) def.description = *s;
            } else if (key == "kernel") {
                if (auto s = String(v, key)) {
                    if (*s == "peinit") {
                        def.kernel = KernelKind::kPeinit;
                    } else if (*s == "debian") {
                        def.kernel = KernelKind::kDebian;
                    } else if (*s == "running") {
                        def.kernel = KernelKind::kRunning;
                    } else if (IsKernelRelease(*s)) {
                        def.kernel = KernelKind::kRelease;
                        def.kernel_release = *s;
                    } else {
                        Fail(LineOf(v), "unknown kernel \"" + *s +
                                            "\" (expected \"peinit\", \"debian\", \"running\" "
                                            "or an installed kernel's release such as "
                                            "\"6.1.0-57-amd64\")");
                        continue;
                    }
                    have_kernel = true;
                    def.kernel_line = LineOf(v);
                }
            } else if (key == "units") {
                for (auto& d : StringList(v, key))
                    if (auto abs = ExistingPath(d.value, d.line, key, true))
                        def.unit_dirs.push_back({*abs, d.line});
            } else if (key == "hive") {
                if (auto s = String(v, key))
                    if (auto abs = ExistingPath(*s, LineOf(v), key, false))
                        def.hive = Located<std::string>{*abs, LineOf(v)};
            } else if (key == "cmdline") {
                if (auto s = String(v, key)) {
                    def.cmdline = *s;
                    def.cmdline_line = LineOf(v);
                }
            } else if (key == "compression") {
                if (auto s = String(v, key)) {
                    auto c = ParseCompression(*s);
                    if (c)
                        def.compression = *c;
                    else
                        Fail(LineOf(v), c.error().message());
                }
            } else if (key == "strip") {
                if (v.is_boolean())
                    def.strip = v.as_boolean()->get();
                else
                    Fail(LineOf(v), "\"strip\" must be a boolean");
            } else if (key == "loose_modules") {
                if (v.is_boolean())
                    def.loose_modules = v.as_boolean()->get();
                else
                    Fail(LineOf(v), "\"loose_modules\" must be a boolean");
            } else if (key == "modules") {
                def.modules = StringList(v, key);
            } else if (key == "modules_from") {
                if (auto s = String(v, key)) {
                    if (*s == "units")
                        def.modules_from = ModuleMode::kUnits;
                    else if (*s == "host")
                        def.modules_from = ModuleMode::kHost;
                    else if (*s == "generic")
                        def.modules_from = ModuleMode::kGeneric;
                    else
                        Fail(LineOf(v), "unknown modules_from \"" + *s +
                                            "\" (expected \"units\", \"host\" or \"generic\")");
                    def.modules_from_line = LineOf(v);
                }
            } else if (key == "files") {
                ParseFiles(v, def);
            } else if (key == "boot") {
                ParseBoot(v, def);
            } else if (key == "packages") {
                ParsePackages(v, def);
            } else if (key == "keys") {
                def.keys = FileList(v, key, ".pub");
            } else if (key == "extra_modules") {
                def.extra_modules = FileList(v, key, ".ko");
            } else if (key == "signing_key") {
                if (auto s = String(v, key))
                    if (auto abs = ExistingPath(*s, LineOf(v), key, false))
                        def.signing_key = Located<std::string>{*abs, LineOf(v)};
            } else {
                Fail(line, "unknown key \"" + key + "\"");
            }
        }
        key_ = "kernel";
        if (!have_kernel && root.find("kernel") == root.end())
            Fail(1,
                 "missing required key \"kernel\" (\"peinit\", \"debian\", \"running\" or a "
                 "kernel release)");
        def.kernel_known = have_kernel;
    }

  private:
    std::string file_;
    std::string dir_;
    std::vector<std::pair<int, std::string>> errors_;
    std::string key_;                // the top-level key being parsed
    std::set<std::string> broken_;   // top-level keys with an error
};

std::string JoinLines(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += (out.empty() ? "" : "\n") + l;
    return out;
}

// The table a section starting at `line` belongs to ("files" for "[[files]]", "boot" for
// "[boot]"), or "" for the top level.
std::string SectionName(std::string_view text, int line) {
    size_t pos = 0;
    for (int l = 1; l < line && pos != std::string_view::npos; ++l) {
        pos = text.find('\n', pos);
        if (pos != std::string_view::npos) ++pos;
    }
    if (pos == std::string_view::npos) return "";
    std::string_view l = text.substr(pos, text.find('\n', pos) - pos);
    size_t first = l.find_first_not_of(" \t");
    if (first == std::string_view::npos || l[first] != '[') return "";
    std::string name;
    for (char c : l.substr(first)) {
        if (c == ']' || c == '#') break;
        if (c != '[' && c != ' ' && c != '\t') name += c;
    }
    return name;
}

// The line of a "FILE:LINE: message" problem (0 when it has none).
int LineOfMessage(const std::string& message, const std::string& file) {
    if (message.compare(0, file.size() + 1, file + ":") != 0) return 0;
    return std::atoi(message.c_str() + file.size() + 1);
}

std::string BaseName(std::string p) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    auto slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

}  // namespace

Result<ImageDefinition> ReadImageDefinitionText(const std::string& text, const std::string& file,
                                                const std::string& dir) {
    ConfigErrors syntax;
    TomlDocument doc = ParseTomlRecovering(file, text, syntax);
    ImageDefinition def;
    def.dir = dir;
    def.file = file;
    def.name = BaseName(dir);
    for (const auto& e : syntax) def.problems.push_back(e.ToString());
    if (!doc.table) return Err(JoinLines(def.problems));
    Parser p(file, dir);
    p.Parse(*doc.table, def);
    std::vector<std::string> semantic = p.errors(doc);
    def.problems.insert(def.problems.end(), semantic.begin(), semantic.end());
    std::stable_sort(def.problems.begin(), def.problems.end(), [&](const auto& a, const auto& b) {
        return LineOfMessage(a, file) < LineOfMessage(b, file);
    });
    def.broken = p.broken();
    // A syntax error leaves its section incomplete: the top level (any key may be missing), or
    // the table it is in ([boot], [[files]], ...).
    for (int line : doc.error_lines) {
        int start = *(std::upper_bound(doc.section_starts.begin(), doc.section_starts.end(), line) - 1);
        std::string header = SectionName(text, start);
        if (header.empty())
            def.syntax_errors = true;
        else
            def.broken.insert(header);
    }
    return def;
}

Result<ImageDefinition> ParseImageDefinition(const std::string& text, const std::string& file,
                                             const std::string& dir) {
    ImageDefinition def = PEINIT_TRY(ReadImageDefinitionText(text, file, dir));
    if (!def.problems.empty()) return Err(JoinLines(def.problems));
    return def;
}

Result<ImageDefinition> ReadImageDefinition(const std::string& path) {
    std::string dir = path;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    std::string file = dir + "/image.toml";
    if (dir.size() > 5 && dir.compare(dir.size() - 5, 5, ".toml") == 0) {
        file = dir;
        auto slash = dir.rfind('/');
        dir = slash == std::string::npos ? "." : dir.substr(0, slash);
    }
    std::ifstream in(file);
    if (!in) return ErrnoErr(file);
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return ErrnoErr(file);
    return ReadImageDefinitionText(ss.str(), file, dir);
}

Result<ImageDefinition> LoadImageDefinition(const std::string& path) {
    ImageDefinition def = PEINIT_TRY(ReadImageDefinition(path));
    if (!def.problems.empty()) return Err(JoinLines(def.problems));
    return def;
}

bool ImageDefinition::Broken(const std::string& key) const {
    return syntax_errors || broken.contains(key);
}

}  // namespace peinit::image
