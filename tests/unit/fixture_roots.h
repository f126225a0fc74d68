#pragma once

// Test helpers for module-tree fixtures (tests/fixtures/roots/<case>/) and for running the
// peinit binary.
//
// A case is built by tests/fixtures/roots/build-root (gcc -c synthetic modules + depmod -b) into
// $TMPDIR/peinit-fixture-roots-<uid>/<case>-<hash>, where the hash covers every source of the
// case and the builder itself: CTest runs each test in its own process, so the tree is built
// once and reused until a source changes. A build goes to a private directory renamed into
// place, so concurrent test processes never see half a tree.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

namespace peinit::testing {

inline constexpr const char* kFixtureKver = "6.1.0-peinit-fixture";

inline std::string ReadFileOrEmpty(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// FNV-1a: only to notice that a fixture's sources changed.
inline void HashBytes(std::uint64_t& h, std::string_view bytes) {
    for (unsigned char c : bytes) {
        h ^= c;
        h *= 1099511628211ull;
    }
}

struct CommandResult {
    int status = -1;  // exit status, or -1 when it did not exit normally
    std::string out;  // stdout
    std::string err;  // stderr
};

// Runs argv[0] (a path or a name looked up in PATH) with stdout and stderr captured.
inline CommandResult RunCommand(const std::vector<std::string>& argv) {
    CommandResult result;
    char out_name[] = "/tmp/peinit-test-out-XXXXXX";
    char err_name[] = "/tmp/peinit-test-err-XXXXXX";
    int out_fd = mkstemp(out_name);
    int err_fd = mkstemp(err_name);
    if (out_fd < 0 || err_fd < 0) return result;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    int wstatus = 0;
    while (pid > 0 && waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (pid > 0 && WIFEXITED(wstatus)) result.status = WEXITSTATUS(wstatus);
    close(out_fd);
    close(err_fd);
    result.out = ReadFileOrEmpty(out_name);
    result.err = ReadFileOrEmpty(err_name);
    unlink(out_name);
    unlink(err_name);
    return result;
}

// The sbin tools depmod and modprobe, also when PATH lacks /sbin.
inline std::string SbinTool(const std::string& name) {
    for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
        std::string p = std::string(dir) + name;
        if (access(p.c_str(), X_OK) == 0) return p;
    }
    return name;
}

// Builds (or reuses) fixture case `name`; returns its root, or an empty path after reporting a
// test failure.
inline std::filesystem::path FixtureRoot(const std::string& name) {
    namespace fs = std::filesystem;
    const fs::path roots = fs::path(PEINIT_FIXTURES_DIR) / "roots";
    const fs::path case_dir = roots / name;
    if (!fs::is_directory(case_dir)) {
        ADD_FAILURE() << "no fixture case " << case_dir;
        return {};
    }
    std::vector<fs::path> inputs = {roots / "build-root", roots / "fixture_module.h"};
    for (const auto& e : fs::recursive_directory_iterator(case_dir)) {
        if (e.is_regular_file()) inputs.push_back(e.path());
    }
    std::sort(inputs.begin() + 2, inputs.end());
    std::uint64_t h = 14695981039346656037ull;
    for (const auto& p : inputs) {
        HashBytes(h, p.lexically_relative(roots).string());
        HashBytes(h, std::string(1, '\0'));
        HashBytes(h, ReadFileOrEmpty(p));
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));

    const fs::path cache =
        fs::temp_directory_path() / ("peinit-fixture-roots-" + std::to_string(getuid()));
    const fs::path target = cache / (name + "-" + hex);
    if (fs::is_directory(target)) return target;
    fs::create_directories(cache);
    std::string tmpl = (cache / (name + ".tmp.XXXXXX")).string();
    if (!mkdtemp(tmpl.data())) {
        ADD_FAILURE() << "mkdtemp in " << cache;
        return {};
    }
    const fs::path tmp = tmpl;
    auto built = RunCommand({(roots / "build-root").string(), case_dir.string(),
                             (tmp / "root").string(), kFixtureKver});
    if (built.status != 0) {
        ADD_FAILURE() << "building fixture " << name << " failed (" << built.status << "):\n"
                      << built.out << built.err;
        fs::remove_all(tmp);
        return {};
    }
    std::error_code ec;
    fs::rename(tmp / "root", target, ec);  // loses harmlessly to a concurrent builder
    fs::remove_all(tmp);
    if (!fs::is_directory(target)) {
        ADD_FAILURE() << "fixture " << target << " missing after build: " << ec.message();
        return {};
    }
    return target;
}

// The peinit binary of this build: the unit-test binary is <build>/tests/peinit_unit_tests.
inline std::filesystem::path PeinitBinary() {
    return std::filesystem::canonical("/proc/self/exe").parent_path().parent_path() / "peinit" /
           "peinit";
}

}  // namespace peinit::testing
