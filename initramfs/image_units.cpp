#include "initramfs/image_units.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

namespace peinit::image {

namespace {

Result<toml::table> ParseTomlFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) return ErrnoErr(path);
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        return toml::parse(ss.str(), path);
    } catch (const toml::parse_error& e) {
        return Err(path + ":" + std::to_string(e.source().begin.line) + ": " +
                   std::string(e.description()));
    }
}

// Interim reading of the unit schema until the core unit parser lands: a unit's boot-time
// modules are the strings of its `modules` arrays (top level or in any table).
void CollectModules(const toml::table& t, const std::string& path,
                    std::vector<ModuleRequest>& out) {
    for (auto&& [k, v] : t) {
        if (const toml::table* sub = v.as_table()) {
            CollectModules(*sub, path, out);
        } else if (k.str() == "modules" || k.str() == "load") {
            if (const toml::array* arr = v.as_array()) {
                for (const toml::node& e : *arr)
                    if (e.is_string())
                        out.push_back({e.as_string()->get(),
                                       path + ":" + std::to_string(e.source().begin.line)});
            }
        }
    }
}

}  // namespace

Result<UnitScan> ScanUnits(const std::vector<Located<std::string>>& dirs) {
    UnitScan scan;
    std::string errors;
    auto fail = [&](const std::string& msg) {
        if (!errors.empty()) errors += "\n";
        errors += msg;
    };
    for (const auto& dir : dirs) {
        DIR* d = ::opendir(dir.value.c_str());
        if (d == nullptr) {
            fail(Error::FromErrno(dir.value).message());
            continue;
        }
        std::vector<std::string> names;
        while (struct dirent* e = ::readdir(d)) {
            std::string n = e->d_name;
            if (n.empty() || n[0] == '.') continue;
            names.push_back(n);
        }
        ::closedir(d);
        std::sort(names.begin(), names.end());
        for (const auto& n : names) {
            std::string p = dir.value + "/" + n;
            struct stat st;
            if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
            scan.files.push_back({n, p});
            if (n.size() > 5 && n.compare(n.size() - 5, 5, ".toml") == 0) {
                auto t = ParseTomlFile(p);
                if (!t) {
                    fail(t.error().message());
                    continue;
                }
                CollectModules(*t, p, scan.modules);
            }
        }
    }
    if (!errors.empty()) return Err(errors);
    std::sort(scan.files.begin(), scan.files.end(),
              [](const UnitFile& a, const UnitFile& b) { return a.name < b.name; });
    return scan;
}

Result<void> ValidateHive(const std::string& path) {
    PEINIT_TRY(ParseTomlFile(path));
    return Ok();
}

}  // namespace peinit::image
