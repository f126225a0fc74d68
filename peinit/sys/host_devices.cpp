#include "peinit/sys/host_devices.h"

#include <libmount.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

namespace peinit {

namespace fs = std::filesystem;

bool IsKeyboardKeyBitmap(const std::string& bitmap) {
    std::istringstream in(bitmap);
    std::string word, last;
    while (in >> word) last = word;
    if (last.empty()) return false;
    char* end = nullptr;
    unsigned long long low = std::strtoull(last.c_str(), &end, 16);
    if (*end != '\0') return false;
    return (low & 0xFFFFFFFEull) == 0xFFFFFFFEull;
}

namespace {

std::string ReadLine(const fs::path& p) {
    std::ifstream in(p);
    std::string line;
    std::getline(in, line);
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    return line;
}

std::string LinkName(const fs::path& p) {
    std::error_code ec;
    fs::path target = fs::read_symlink(p, ec);
    return ec ? std::string() : target.filename().string();
}

bool StartsWith(const std::string& s, std::string_view prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

// "loop3" -> "loop" when the rest is digits.
bool NumberedName(const std::string& name, std::string_view base) {
    if (!StartsWith(name, base) || name.size() == base.size()) return false;
    return std::all_of(name.begin() + static_cast<long>(base.size()), name.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
}

class Scanner {
  public:
    explicit Scanner(fs::path root) : root_(std::move(root)), devices_(root_ / "sys/devices") {}

    std::string Rel(const fs::path& p) const {
        std::string s = p.string(), r = root_.string();
        if (r == "/") return s;
        return s.compare(0, r.size(), r) == 0 ? s.substr(r.size()) : s;
    }

    // The directory a sysfs link points to, inside the root; nullopt when it does not resolve.
    std::optional<fs::path> Resolve(const fs::path& link) const {
        std::error_code ec;
        fs::path p = fs::canonical(link, ec);
        if (ec) return std::nullopt;
        return p;
    }

    // The device and its parents up to ROOT/sys/devices, each with a driver or a modalias.
    void Chain(const fs::path& start, HostNeed& need) const {
        const std::string top = devices_.string() + "/";
        for (fs::path p = start; StartsWith(p.string(), top); p = p.parent_path()) {
            HostDevice d;
            d.syspath = Rel(p);
            d.name = p.filename().string();
            if (fs::is_symlink(p / "driver")) {
                d.driver = LinkName(p / "driver");
                d.driver_module = LinkName(p / "driver" / "module");
            }
            std::error_code ec;
            if (fs::is_regular_file(p / "modalias", ec)) d.modalias = ReadLine(p / "modalias");
            if (!d.driver.empty() || !d.modalias.empty()) need.devices.push_back(std::move(d));
        }
    }

    std::vector<fs::path> Slaves(const fs::path& dev) const {
        std::vector<fs::path> out;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(dev / "slaves", ec))
            if (auto p = Resolve(e.path())) out.push_back(*p);
        std::sort(out.begin(), out.end());
        return out;
    }

    // A block device (canonical sysfs directory) and everything under it.
    void Block(const fs::path& dev, HostNeed& need, std::set<fs::path>& seen) {
        if (!seen.insert(dev).second) return;
        const std::string name = dev.filename().string();
        std::error_code ec;
        if (fs::is_directory(dev / "dm", ec)) {
            const std::string uuid = ReadLine(dev / "dm/uuid");
            need.modules.push_back({"dm_mod", name + ": device-mapper", false});
            std::string target;
            if (StartsWith(uuid, "CRYPT-VERITY-"))
                target = "dm_verity";
            else if (StartsWith(uuid, "CRYPT-INTEGRITY-"))
                target = "dm_integrity";
            else if (StartsWith(uuid, "CRYPT-"))
                target = "dm_crypt";
            else if (StartsWith(uuid, "mpath-"))
                target = "dm_multipath";
            else if (StartsWith(uuid, "LVM-")) {
                for (const auto& s : Slaves(dev)) {
                    std::string sub = ReadLine(s / "dm/name");
                    if (sub.find("_rimage_") != std::string::npos) target = "dm_raid";
                }
            }
            if (!target.empty())
                need.modules.push_back(
                    {target, name + ": device-mapper target (dm/uuid " + uuid + ")", false});
            for (const auto& s : Slaves(dev)) Block(s, need, seen);
            return;
        }
        if (fs::is_directory(dev / "md", ec)) {
            const std::string level = ReadLine(dev / "md/level");
            need.modules.push_back({"md_mod", name + ": MD RAID", false});
            std::string personality;
            if (level == "raid0" || level == "raid1" || level == "raid10" || level == "linear" ||
                level == "multipath")
                personality = level;
            else if (level == "raid4" || level == "raid5" || level == "raid6")
                personality = "raid456";
            if (!personality.empty())
                need.modules.push_back({personality, name + ": MD level " + level, false});
            else
                notes_.push_back(Rel(dev) + ": MD level \"" + level + "\" has no known module");
            for (const auto& s : Slaves(dev)) Block(s, need, seen);
            return;
        }
        for (std::string_view base : {"loop", "nbd", "zram"})
            if (NumberedName(name, base))
                need.modules.push_back({std::string(base), name + ": block device", false});
        Chain(dev, need);
    }

    Result<void> Root(HostScan& scan) {
        const fs::path table_path = root_ / "proc/self/mountinfo";
        std::unique_ptr<libmnt_table, decltype(&mnt_free_table)> table(
            mnt_new_table_from_file(table_path.c_str()), mnt_free_table);
        if (!table) return ErrnoErr("cannot read the mount table " + table_path.string());
        libmnt_fs* root_fs = mnt_table_find_target(table.get(), "/", MNT_ITER_BACKWARD);
        if (root_fs == nullptr) return Err(table_path.string() + ": no file system mounted on /");
        const char* type_c = mnt_fs_get_fstype(root_fs);
        const char* source_c = mnt_fs_get_source(root_fs);
        const std::string type = type_c != nullptr ? type_c : "";
        const std::string source = source_c != nullptr ? source_c : "";
        dev_t devno = mnt_fs_get_devno(root_fs);

        std::optional<fs::path> dev;
        if (::major(devno) != 0) {
            dev = Resolve(root_ / "sys/dev/block" /
                          (std::to_string(::major(devno)) + ":" + std::to_string(::minor(devno))));
        }
        if (!dev && StartsWith(source, "/dev/"))
            dev = Resolve(root_ / "sys/class/block" / fs::path(source).filename());
        HostNeed need;
        const std::string dev_name = dev ? dev->filename().string() : source;
        need.subject = "root / on " + dev_name + " (" + type + ")";
        if (!type.empty()) need.modules.push_back({type, "root file system type " + type, true});
        if (dev) {
            std::set<fs::path> seen;
            Block(*dev, need, seen);
        } else {
            scan.notes.push_back("root / (" + type + " from " + source +
                                 ") has no block device in " + Rel(root_ / "sys/dev/block"));
        }
        scan.needs.push_back(std::move(need));
        return Ok();
    }

    void Console(HostScan& scan) {
        std::istringstream active(ReadLine(root_ / "sys/class/tty/console/active"));
        std::string tty;
        while (active >> tty) {
            auto dev = Resolve(root_ / "sys/class/tty" / tty / "device");
            if (!dev) {
                notes_.push_back("console " + tty +
                                 " has no device (a virtual terminal): its display driver is "
                                 "not detected");
                continue;
            }
            HostNeed need;
            need.subject = "console " + tty;
            Chain(*dev, need);
            scan.needs.push_back(std::move(need));
        }
    }

    void Keyboards(HostScan& scan) {
        std::vector<fs::path> inputs;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(root_ / "sys/class/input", ec))
            if (NumberedName(e.path().filename().string(), "input")) inputs.push_back(e.path());
        std::sort(inputs.begin(), inputs.end());
        for (const auto& in : inputs) {
            if (!IsKeyboardKeyBitmap(ReadLine(in / "capabilities/key"))) continue;
            auto dev = Resolve(in);
            if (!dev) continue;
            HostNeed need;
            need.subject =
                "keyboard " + in.filename().string() + " (" + ReadLine(in / "name") + ")";
            Chain(dev->parent_path(), need);
            scan.needs.push_back(std::move(need));
        }
    }

    std::vector<std::string> notes_;

  private:
    fs::path root_;
    fs::path devices_;
};

}  // namespace

Result<HostScan> ScanHost(const std::string& root_in) {
    std::error_code ec;
    fs::path root = fs::canonical(root_in.empty() ? "/" : root_in, ec);
    if (ec) return Err("host root " + root_in + ": " + ec.message());
    Scanner scanner(root);
    HostScan scan;
    PEINIT_TRY(scanner.Root(scan));
    scanner.Console(scan);
    scanner.Keyboards(scan);
    scan.notes.insert(scan.notes.end(), scanner.notes_.begin(), scanner.notes_.end());
    return scan;
}

}  // namespace peinit
