#include "initramfs/image_units.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "peinit/core/cmdline.h"
#include "peinit/core/units.h"

namespace peinit::image {

namespace {

Result<std::string> ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return ErrnoErr(path);
    std::stringstream ss;
    ss << in.rdbuf();
    if (in.bad()) return ErrnoErr(path);
    return ss.str();
}

std::string JoinErrors(const ConfigErrors& errors) {
    std::string s;
    for (const auto& e : errors) s += (s.empty() ? "" : "\n") + e.ToString();
    return s;
}

}  // namespace

UnitScan ScanUnits(const std::vector<Located<std::string>>& dirs,
                   std::vector<std::string>& problems) {
    UnitScan scan;
    ConfigErrors errors;
    std::vector<UnitSource> sources;
    std::map<std::string, std::string> seen;  // file name -> path
    for (const auto& dir : dirs) {
        DIR* d = ::opendir(dir.value.c_str());
        if (d == nullptr) {
            errors.push_back({dir.value, 0, Error::FromErrno("cannot open").message()});
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
            if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || !IsUnitFileName(n)) {
                errors.push_back({p, 0, "not a unit file (expected NAME.toml or NAME.conf)"});
                continue;
            }
            if (auto [it, fresh] = seen.emplace(n, p); !fresh) {
                errors.push_back(
                    {p, 0, "same file name as " + it->second + " (both would ship as " + n + ")"});
                continue;
            }
            auto text = ReadFile(p);
            if (!text) {
                errors.push_back({p, 0, text.error().message()});
                continue;
            }
            sources.push_back({p, std::move(*text)});
            scan.files.push_back({n, p});
        }
    }
    // Units without errors still count (their modules are resolved, their services checked),
    // so the build reports their problems together with the broken units'.
    UnitSet set = ParseUnits(sources, errors);
    for (const auto& e : errors) problems.push_back(e.ToString());
    for (const Unit& u : set.units) {
        for (const ModuleSpec& m : u.modules)
            scan.modules.push_back(
                {m.name, u.path + ":" + std::to_string(m.line), m.options, m.optional});
        for (const ServiceSpec& svc : u.services)
            if (!svc.exec.empty())
                scan.services.push_back(
                    {svc.name, svc.exec[0], u.path + ":" + std::to_string(svc.line)});
    }
    std::sort(scan.files.begin(), scan.files.end(),
              [](const UnitFile& a, const UnitFile& b) { return a.name < b.name; });
    scan.set = std::move(set);
    return scan;
}

Result<Hive> LoadHive(const std::string& path) {
    std::string text = PEINIT_TRY(ReadFile(path));
    // Ownership is the image's business (the builder writes everything as root, 0644), so the
    // source file's trust is not checked here; peinit checks the shipped file at boot.
    Hive hive = ParseHive(path, text, nullptr);
    if (hive.state == HiveState::kFallback) return Err(JoinErrors(hive.errors));
    return hive;
}

Result<CmdlineEffect> CheckCmdline(const std::string& cmdline, const std::string& origin) {
    CmdlineEffect effect;
    if (cmdline.empty()) return effect;
    Cmdline parsed = ParseCmdline(cmdline);
    std::string errors;
    for (const auto& d : parsed.diagnostics)
        errors += (errors.empty() ? "" : "\n") + origin + ": cmdline: " + d.ToString();
    if (!errors.empty()) return Err(errors);
    for (const auto& m : parsed.modules_load)
        effect.modules.push_back({m, origin + " (cmdline modules_load=)", "", false});
    for (const auto& b : parsed.blacklist) effect.deny.push_back({b, "modprobe.blacklist="});
    return effect;
}

}  // namespace peinit::image
