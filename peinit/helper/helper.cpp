#include "peinit/helper/helper.h"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include <openssl/crypto.h>

#include "peinit/core/demand_load.h"
#include "peinit/record/policy.h"
#include "peinit/core/sealed_tree.h"
#include "peinit/modload/packages.h"
#include "peinit/sys/config_files.h"
#include "peinit/sys/kernel_release.h"
#include "peinit/sys/linux_kernel.h"
#include "peinit/modload/session.h"

namespace peinit {

namespace {

namespace fs = std::filesystem;

// The kernel may start the helper without descriptors 0-2. Occupy them with /dev/null so
// nothing we open later (the kmsg descriptor, a package) can be mistaken for stdout/stderr.
void EnsureStandardDescriptors() {
    for (int fd = 0; fd < 3; ++fd) {
        if (fcntl(fd, F_GETFD) >= 0) continue;
        int n = open("/dev/null", O_RDWR);
        if (n < 0) return;
        if (n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
}

void WriteKmsg(const std::vector<HelperLogLine>& lines) {
    if (lines.empty()) return;
    int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return;
    for (const auto& l : lines) {
        std::string record = "<" + std::to_string(l.priority) + ">" +
                             std::string(kHelperProgramName) + ": " + l.text.substr(0, 900) + "\n";
        ssize_t n;
        do {
            n = write(fd, record.data(), record.size());
        } while (n < 0 && errno == EINTR);
    }
    close(fd);
}

}  // namespace

int RunDemandLoadHelper(const std::vector<std::string>& args, const BootPaths& paths,
                        const std::string& kernel_release, Kernel& kernel,
                        std::vector<HelperLogLine>& log) {
    std::vector<std::string_view> views(args.begin(), args.end());
    auto parsed = ParseHelperArgs(views);
    if (!parsed) {
        log.push_back(
            {LOG_ERR, "usage: " + parsed.error().message() + " (expected: -q -- MODULE-OR-ALIAS)"});
        return 2;
    }
    const std::string& alias = parsed->alias;

    // Exactly the policy PID 1 computed and recorded: never recomputed here, since the
    // hive may be absent (after the handoff) or different. No usable record: disabled.
    Cmdline cmdline;
    if (auto text = ReadConfigFile(paths.CmdlineFile().string())) {
        cmdline = ParseCmdline(text->text);
    } else {
        log.push_back({LOG_WARNING, "cannot read the kernel command line: " +
                                        text.error().message() + ", ignoring"});
    }
    // The sealed tree's copy (peinit/core/sealed_tree.h): read-only for every process, unlike
    // /run/peinit/policy.json, which is only a record for status.
    auto record_text = ReadConfigFile(paths.Under(kSealedPolicyPath).string());
    auto record = record_text ? PolicyRecord::FromJson(record_text->text, kSealedPolicyPath)
                              : Result<PolicyRecord>(record_text.error());
    if (!record) {
        log.push_back({LOG_WARNING, "refused demand load of " + alias +
                                        ": no usable policy record (" + record.error().message() +
                                        "), failing closed as AutoLoadPolicy=disabled"});
        return 1;
    }
    const EffectivePolicy& policy = record->policy;
    BootPaths modload{paths.Under(record->modload_root)};

    ModloadSession session(kernel, modload, kernel_release, policy, cmdline);
    // Only the packages that provide what this call loads are read and checked (issue 24: not
    // every package on every call). Without an index: every package, as before.
    if (auto index = ReadConfigFile(
            (modload.root / fs::path(kSealedPackagesIndex).filename()).string())) {
        session.UsePackagesIndex(ParsePackagesIndex(index->text));
    }
    if (auto db = session.Db(); !db) {
        log.push_back({LOG_ERR, "demand load of " + alias +
                                    " failed: module tree: " + db.error().message()});
        return 1;
    }
    DemandLoadReport report = session.Demand(alias, RequestOrigin::Demand(alias));
    if (!report.error.empty()) {
        log.push_back({LOG_ERR, "demand load of " + alias + " failed: " + report.error});
        return 1;
    }
    if (report.resolved.empty()) return 1;  // like modprobe -q: quiet when nothing provides it
    for (const auto& r : report.refused) {
        log.push_back({LOG_WARNING, "refused demand load of " + alias + " (module " + r.module +
                                        "): " + r.reason});
    }
    for (const auto& r : report.soft_refused) {
        log.push_back({LOG_WARNING, "refused soft dependency " + r.module + " of " + alias +
                                        ": " + r.reason});
    }
    for (const auto& o : report.outcomes) {
        if (o.status == ModuleOutcome::Status::kLoaded) {
            log.push_back({LOG_INFO, "loaded " + o.module + " for " + alias +
                                         (o.package.empty() ? "" : " from " + o.package)});
        } else if (!o.Succeeded() && !o.refused &&
                   o.status != ModuleOutcome::Status::kBlacklisted) {
            log.push_back({LOG_ERR, "demand load of " + alias + ": module " + o.module + " " +
                                        std::string(ToString(o.status)) + ": " + o.reason});
        }
    }
    return report.Succeeded() ? 0 : 1;
}

namespace {

// The sealed wrapper chrooted into the tree for the loader; back to the real root through the
// descriptor it kept (peinit/core/sealed_tree.h).
Result<void> ReturnToRealRoot(const char* fd_text) {
    if (fd_text == nullptr) return Ok();  // run directly, not through the sealed wrapper
    char* end = nullptr;
    errno = 0;
    long fd = std::strtol(fd_text, &end, 10);
    if (errno != 0 || end == fd_text || *end != '\0' || fd < 3 || fd > 1024) {
        return Err(std::string(kRealRootFdVariable) + "=\"" + fd_text + "\" is not a descriptor");
    }
    if (::fchdir(static_cast<int>(fd)) != 0) return ErrnoErr("fchdir to the real root");
    if (::chroot(".") != 0) return ErrnoErr("chroot to the real root");
    if (::chdir("/") != 0) return ErrnoErr("chdir /");
    ::close(static_cast<int>(fd));
    return Ok();
}

}  // namespace

int ModprobeHelperMain(int argc, char** argv) noexcept {
    try {
        // Before anything uses OpenSSL: never read an openssl.cnf (it can load engines and
        // providers, i.e. code, from the writable root).
        OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
        EnsureStandardDescriptors();
        // Started by the sealed wrapper: every library is mapped (from the tree); from here on
        // /proc, /sys and /dev are the real root's.
        if (auto back = ReturnToRealRoot(std::getenv(kRealRootFdVariable)); !back) {
            WriteKmsg({{LOG_ERR, "refused demand load: " + back.error().message()}});
            return 1;
        }
        std::vector<std::string> args;
        for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
        std::vector<HelperLogLine> log;
        int status = 1;
        if (auto release = RunningKernelRelease()) {
            LinuxKernel kernel;
            status = RunDemandLoadHelper(args, BootPaths{}, *release, kernel, log);
        } else {
            log.push_back({LOG_ERR, "uname: " + release.error().message()});
        }
        WriteKmsg(log);
        return status;
    } catch (...) {
        return 1;
    }
}

}  // namespace peinit
