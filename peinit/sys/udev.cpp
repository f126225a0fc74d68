#include "peinit/sys/udev.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>
#include <string_view>
#include <utility>

namespace peinit {

namespace {

namespace fs = std::filesystem;

// The value of the MODALIAS= line of a uevent file ("" when there is none).
std::string UeventModalias(const fs::path& uevent) {
    int fd = open(uevent.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return "";
    char buf[4096];
    ssize_t n;
    do {
        n = read(fd, buf, sizeof buf);
    } while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0) return "";
    std::string_view text(buf, static_cast<size_t>(n));
    constexpr std::string_view kKey = "MODALIAS=";
    for (size_t pos = 0; pos < text.size();) {
        size_t eol = text.find('\n', pos);
        std::string_view line = text.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
        if (line.starts_with(kKey)) return std::string(line.substr(kKey.size()));
        if (eol == std::string_view::npos) break;
        pos = eol + 1;
    }
    return "";
}

}  // namespace

Result<std::vector<DeviceModalias>> EnumerateModaliases(const std::string& sysfs) {
    std::error_code ec;
    if (!fs::is_directory(fs::path(sysfs) / "bus", ec)) {
        return Err(sysfs + "/bus is not readable", ENOENT);
    }
    // Devices are told apart by the inode of their directory (one stat) rather than by
    // resolving every link (a realpath walks each component); only matches are resolved.
    std::set<std::pair<dev_t, ino_t>> seen;
    std::vector<DeviceModalias> out;
    auto scan = [&](const fs::path& dir) {
        std::error_code e;
        for (const auto& entry : fs::directory_iterator(dir, e)) {
            struct stat st;
            if (stat(entry.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
            if (!seen.insert({st.st_dev, st.st_ino}).second) continue;
            std::string alias = UeventModalias(entry.path() / "uevent");
            if (alias.empty()) continue;
            std::error_code e2;
            fs::path real = fs::canonical(entry.path(), e2);
            out.push_back({e2 ? entry.path().string() : real.string(), std::move(alias)});
        }
    };
    for (const char* top : {"bus", "class"}) {
        std::error_code e;
        for (const auto& group : fs::directory_iterator(fs::path(sysfs) / top, e)) {
            scan(std::string(top) == "bus" ? group.path() / "devices" : group.path());
        }
    }
    std::sort(out.begin(), out.end(),
              [](const DeviceModalias& a, const DeviceModalias& b) { return a.syspath < b.syspath; });
    return out;
}

}  // namespace peinit
