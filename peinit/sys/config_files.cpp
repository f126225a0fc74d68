#include "peinit/sys/config_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "peinit/core/cmdline.h"

namespace peinit {

namespace {

// Closes a descriptor on every return path.
class Fd {
  public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

  private:
    int fd_;
};

Unexpected CannotRead(const std::string& path, int err) {
    return Err(path + ": cannot read: " + std::strerror(err), err);
}

// A read error as a ConfigError: the Error's message is "PATH: reason" (see CannotRead), the
// ConfigError keeps the path and the reason apart.
ConfigError ReadError(const std::string& path, const Error& e) {
    std::string prefix = path + ": ";
    const std::string& m = e.message();
    return {path, 0, m.compare(0, prefix.size(), prefix) == 0 ? m.substr(prefix.size()) : m};
}

std::string JoinPath(const std::string& dir, const std::string& name) {
    if (dir.empty() || dir.back() == '/') return dir + name;
    return dir + "/" + name;
}

// Regular files (or symlinks to them) in `dir` that look like unit files, sorted.
Result<std::vector<std::string>> ListUnitFiles(const std::string& dir) {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return CannotRead(dir, errno);
    std::vector<std::string> names;
    int err = 0;
    while (true) {
        errno = 0;  // readdir() reports errors only through errno
        dirent* e = ::readdir(d);
        if (e == nullptr) {
            err = errno;
            break;
        }
        std::string name = e->d_name;
        if (!IsUnitFileName(name)) continue;
        struct stat st;
        if (::fstatat(::dirfd(d), name.c_str(), &st, 0) == 0 && S_ISDIR(st.st_mode)) continue;
        names.push_back(name);
    }
    ::closedir(d);
    if (err != 0) return CannotRead(dir, err);
    std::sort(names.begin(), names.end());
    return names;
}

}  // namespace

Result<FileContents> ReadConfigFile(const std::string& path, bool follow_symlinks) {
    // O_NONBLOCK: opening a FIFO planted in a config directory must not hang the boot.
    int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (follow_symlinks ? 0 : O_NOFOLLOW);
    Fd fd(::open(path.c_str(), flags));
    if (fd.get() < 0) return CannotRead(path, errno);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return CannotRead(path, errno);
    if (S_ISDIR(st.st_mode)) return CannotRead(path, EISDIR);
    if (!S_ISREG(st.st_mode)) return Err(path + ": cannot read: not a regular file", EINVAL);
    if (static_cast<size_t>(st.st_size) > kMaxConfigFileSize) {
        return Err(
            path + ": cannot read: larger than " + std::to_string(kMaxConfigFileSize) + " bytes",
            EFBIG);
    }
    FileContents out;
    out.trust = {static_cast<uint32_t>(st.st_uid), static_cast<uint32_t>(st.st_gid),
                 static_cast<uint32_t>(st.st_mode & 07777)};
    char buf[8192];
    while (true) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return CannotRead(path, errno);
        }
        if (n == 0) break;
        out.text.append(buf, static_cast<size_t>(n));
        if (out.text.size() > kMaxConfigFileSize) return CannotRead(path, EFBIG);
    }
    return out;
}

UnitLoad LoadUnitDirs(const std::vector<std::string>& dirs) {
    UnitLoad load;
    std::vector<UnitSource> files;
    for (const auto& dir : dirs) {
        auto names = ListUnitFiles(dir);
        if (!names) {
            load.errors.push_back(ReadError(dir, names.error()));
            continue;
        }
        for (const auto& name : *names) {
            std::string path = JoinPath(dir, name);
            auto file = ReadConfigFile(path);
            if (!file) {
                load.errors.push_back(ReadError(path, file.error()));
                continue;
            }
            files.push_back({path, std::move(file->text)});
        }
    }
    load.units = ParseUnits(files, load.errors);
    return load;
}

Hive LoadHive(const std::string& path, HiveLoadOptions options) {
    auto file = ReadConfigFile(path, options.follow_symlinks);
    if (!file) {
        if (file.error().code() == ENOENT) return AbsentHive();
        return FallbackHive(path, {ReadError(path, file.error())});
    }
    return ParseHive(path, file->text, options.check_trust ? &file->trust : nullptr);
}

Result<Hive> LoadHiveOrError(const std::string& path, HiveLoadOptions options) {
    Hive hive = LoadHive(path, options);
    if (hive.state == HiveState::kAbsent) return CannotRead(path, ENOENT);
    if (hive.state == HiveState::kFallback) {
        std::string errors;
        for (const auto& e : hive.errors) errors += (errors.empty() ? "" : "\n") + e.ToString();
        return Err(errors);
    }
    return hive;
}

CheckReport CheckConfiguration(const CheckOptions& options) {
    CheckReport report;
    std::vector<std::string> dirs = options.unit_dirs;
    if (dirs.empty()) dirs.push_back(JoinPath(options.root, "etc/peinit/units"));
    UnitLoad units = LoadUnitDirs(dirs);
    for (const auto& e : units.errors) report.problems.push_back(e.ToString());
    report.unit_count = units.units.units.size();
    report.module_count = units.units.ModuleCount();
    report.service_count = units.units.ServiceCount();

    std::string hive_path = options.hive.value_or(JoinPath(options.root, "etc/peinit/hive.toml"));
    Hive hive = LoadHive(hive_path, {.check_trust = options.check_trust});
    if (hive.state == HiveState::kAbsent && options.hive) {
        // Asked for explicitly, so its absence is a problem, not "use the defaults".
        report.problems.push_back(hive_path + ": cannot read: " + std::strerror(ENOENT));
    }
    for (const auto& e : hive.errors) report.problems.push_back(e.ToString());
    report.hive_state = hive.state;
    if (hive.state != HiveState::kAbsent) report.hive_path = hive_path;

    if (options.cmdline) {
        Cmdline cmdline = ParseCmdline(*options.cmdline);
        for (const auto& d : cmdline.diagnostics) {
            report.problems.push_back("cmdline: " + d.ToString());
        }
    }
    return report;
}

}  // namespace peinit
