// The boot tests' QEMU runner (tests/boot/qemu_runner.h): a guest kernel that never reaches user
// space is stopped after QemuOptions::user_space_within and booted once more, within the same
// overall timeout; a boot that reached user space is never cut short by that limit. A stand-in
// for qemu-system-x86_64 (a shell script counting its runs) plays the guest.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "qemu_runner.h"

namespace fs = std::filesystem;
using peinit::testing::QemuOptions;
using peinit::testing::QemuResult;
using peinit::testing::run_qemu;
using namespace std::chrono_literals;

namespace {

class FakeQemu : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/peinit-qemu-runner-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        std::ofstream(dir_ / "bzImage") << "kernel";
        std::ofstream(dir_ / "initrd") << "initrd";
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }

    // A "qemu" whose first `stalls` runs print the kernel's first lines and then hang (as the
    // guest kernel does when it stalls before /init); the later ones reach user space, print
    // `after` (shell) and exit 0.
    QemuOptions Guest(int stalls, const std::string& after = "") {
        const fs::path script = dir_ / "qemu";
        std::ofstream(script) << "#!/bin/sh\n"
                              << "n=$(cat " << Runs() << " 2>/dev/null || echo 0)\n"
                              << "n=$((n + 1)); echo $n > " << Runs() << "\n"
                              << "echo \"[    0.000000] Linux version 6.1.0 (boot $n)\"\n"
                              << "if [ $n -le " << stalls << " ]; then\n"
                              << "  echo \"[   21.000000] rcu: INFO: rcu_preempt self-detected stall on CPU\"\n"
                              << "  exec sleep 60\n"
                              << "fi\n"
                              << "echo \"[    2.500000] Run /init as init process\"\n"
                              << after << "\n"
                              << "echo \"guest: done in boot $n\"\n";
        chmod(script.c_str(), 0755);
        QemuOptions o;
        o.qemu_binary = script.string();
        o.kernel = (dir_ / "bzImage").string();
        o.initrd = (dir_ / "initrd").string();
        o.timeout = 20s;
        o.user_space_within = 2s;
        o.log_file = (dir_ / "console.log").string();
        return o;
    }
    std::string Runs() const { return (dir_ / "runs").string(); }
    int RunCount() const {
        int n = 0;
        std::ifstream(Runs()) >> n;
        return n;
    }

    fs::path dir_;
};

TEST_F(FakeQemu, AStallBeforeUserSpaceIsBootedOnceMore) {
    QemuResult r = run_qemu(Guest(1));
    EXPECT_TRUE(r.clean_exit()) << r.describe();
    EXPECT_EQ(RunCount(), 2);
    EXPECT_FALSE(r.stalled_before_user_space);
    // The result is the second boot's; the first is named, with its last console line.
    EXPECT_NE(r.output.find("guest: done in boot 2"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("(boot 1)"), std::string::npos) << r.output;
    EXPECT_NE(r.retried_after.find("stalled in the guest kernel"), std::string::npos)
        << r.retried_after;
    EXPECT_NE(r.retried_after.find("self-detected stall"), std::string::npos) << r.retried_after;
    EXPECT_NE(r.describe().find("the second boot"), std::string::npos) << r.describe();
    // The stalled boot's console is kept beside the log.
    std::ifstream stalled(dir_ / "console.log.stalled");
    std::string first((std::istreambuf_iterator<char>(stalled)), {});
    EXPECT_NE(first.find("(boot 1)"), std::string::npos) << first;
    // Stopped at the limit, not at the overall timeout.
    EXPECT_LT(r.elapsed, 15s);
}

TEST_F(FakeQemu, TwoStallsFailWithTheReason) {
    QemuResult r = run_qemu(Guest(2));
    EXPECT_FALSE(r.clean_exit());
    EXPECT_TRUE(r.stalled_before_user_space);
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(RunCount(), 2);  // once more, never a third time
    EXPECT_NE(r.describe().find("stalled in the guest kernel"), std::string::npos)
        << r.describe();
    EXPECT_NE(r.describe().find("the second boot"), std::string::npos) << r.describe();
}

TEST_F(FakeQemu, TheRetryHasOnlyWhatIsLeftOfTheTimeout) {
    QemuOptions o = Guest(1, "sleep 60");
    o.timeout = 5s;
    QemuResult r = run_qemu(o);
    EXPECT_EQ(RunCount(), 2);
    EXPECT_TRUE(r.timed_out) << r.describe();
    EXPECT_FALSE(r.stalled_before_user_space);
    EXPECT_LT(r.elapsed, 5s + 3s) << r.describe();  // the timeout, and the kill's grace
}

TEST_F(FakeQemu, ABootInUserSpaceIsNotCutShortByTheLimit) {
    // Reaches user space at once, then runs twice the limit.
    QemuResult r = run_qemu(Guest(0, "sleep 4"));
    EXPECT_TRUE(r.clean_exit()) << r.describe();
    EXPECT_EQ(RunCount(), 1);
    EXPECT_TRUE(r.retried_after.empty());
    EXPECT_NE(r.output.find("guest: done in boot 1"), std::string::npos) << r.output;
}

TEST_F(FakeQemu, NoLimitWhenItIsZero) {
    QemuOptions o = Guest(1);
    o.user_space_within = 0s;
    o.timeout = 3s;
    QemuResult r = run_qemu(o);
    EXPECT_TRUE(r.timed_out) << r.describe();
    EXPECT_FALSE(r.stalled_before_user_space);
    EXPECT_EQ(RunCount(), 1);
}

}  // namespace
