// The real-root fixture as a disk for boot tests: a minimal Debian 12 with systemd
// (tests/realroot/build, PEINIT_REALROOT_DIR), with a scratch overlay of test files and units laid
// over it by tests/realroot/make-disk. Shared by the real-root and measured-boot tests.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "image_boot.h"

namespace peinit::testing {

// The fixture's tree from the environment variable (PEINIT_REALROOT_DIR or
// PEINIT_REALROOT_KERNEL_DIR); "" when unset.
inline std::string RealRootTree(const char* variable = "PEINIT_REALROOT_DIR") {
    const char* dir = std::getenv(variable);
    return dir && *dir ? std::string(dir) + "/root" : "";
}

// A scratch directory of files laid over the fixture tree.
struct Overlay {
    std::filesystem::path dir;
    explicit Overlay(const std::filesystem::path& d) : dir(d) {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
        std::filesystem::create_directories(dir);
    }
    void Write(const std::string& path, const std::string& text,
               std::filesystem::perms mode = std::filesystem::perms(0644)) {
        std::filesystem::path p = dir / std::filesystem::path(path).relative_path();
        std::filesystem::create_directories(p.parent_path());
        std::ofstream(p) << text;
        std::filesystem::permissions(p, mode);
    }
    void Copy(const std::string& from, const std::string& path) {
        std::filesystem::path p = dir / std::filesystem::path(path).relative_path();
        std::filesystem::create_directories(p.parent_path());
        std::filesystem::copy(from, p,
                              std::filesystem::copy_options::recursive |
                                  std::filesystem::copy_options::overwrite_existing);
    }
    // A oneshot unit, wanted by multi-user.target, whose output goes to the results channel.
    void Unit(const std::string& name, const std::string& service_lines) {
        Write("/etc/systemd/system/" + name,
              "[Unit]\nDescription=peinit boot test\nAfter=systemd-modules-load.service "
              "systemd-udev-trigger.service\n\n[Service]\nType=oneshot\n"
              "StandardOutput=file:" + std::string(kResultsDevice) + "\nStandardError=inherit\n" +
                  service_lines);
        const auto wants = dir / "etc/systemd/system/multi-user.target.wants";
        std::filesystem::create_directories(wants);
        std::filesystem::create_symlink("../" + name, wants / name);
    }
};

// Runs tests/realroot/make-disk over `tree` (default: the real-root fixture); returns its log on
// failure ("" when it worked).
inline std::string MakeDisk(const Overlay& overlay, const std::string& out,
                            const std::string& args, const std::string& tree = RealRootTree()) {
    std::string log;
    std::string cmd = std::string(PEINIT_SOURCE_DIR) + "/tests/realroot/make-disk --root " +
                      ShellQuote(tree) + " --add " + ShellQuote(overlay.dir.string()) +
                      " --out " + ShellQuote(out) + " " + args;
    return Sh(cmd, log) == 0 ? "" : cmd + "\n" + log;
}

}  // namespace peinit::testing
