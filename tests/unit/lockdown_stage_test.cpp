// The lock stage (stages/lockdown) against the fake kernel: LOCK on the patched kernel, and on
// an unpatched one R-18's fallback with its user-space audit record (issue 15).

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/module_lockdown.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "peinit/core/boot_context.h"
#include "tests/fakes/fake_kernel.h"
#include "stages/lockdown/lockdown.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;

class LockdownStageTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/peinit-lockdown-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        fs::create_directories(dir_ / "run/peinit");
        ctx_.paths.root = dir_;
        ctx_.policy.lock_after_boot.value = true;
        ctx_.policy.lock_after_boot.source = PolicySource::kHive;
    }
    void TearDown() override { fs::remove_all(dir_); }

    fs::path dir_;
    FakeKernel kernel_;
    BootContext ctx_{kernel_};
};

TEST_F(LockdownStageTest, PatchedKernelLocksWithTheRegistryTrigger) {
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_TRUE(kernel_.IsLocked());
    EXPECT_EQ(kernel_.LockTrigger(), MODULE_LOCKDOWN_TRIGGER_REGISTRY);
    EXPECT_EQ(ctx_.lock.mechanism, "syscall");
    EXPECT_TRUE(kernel_.Calls(KernelOp::kAudit).empty()) << "the kernel audits LOCK itself";
}

TEST_F(LockdownStageTest, FallbackLockSendsAUserSpaceAuditRecord) {
    kernel_.SetUnpatched(true);
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_EQ(ctx_.lock.mechanism, "modules_disabled");
    EXPECT_EQ(kernel_.Sysctl("kernel/modules_disabled"), "1");
    EXPECT_EQ(kernel_.Sysctl("kernel/modprobe").value_or("x"), "");
    auto audit = kernel_.Calls(KernelOp::kAudit);
    ASSERT_EQ(audit.size(), 1u);
    EXPECT_EQ(audit[0].args, "op=module-lockdown-fallback mechanism=modules_disabled "
                             "trigger=boot-orchestrator-step res=success");
}

TEST_F(LockdownStageTest, FallbackThatFailsIsAuditedAsFailedAndIsAnError) {
    kernel_.SetUnpatched(true);
    kernel_.SetOpError(KernelOp::kWriteSysctl, "kernel/modprobe", EROFS);
    auto r = RunLockdown(ctx_);
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), ::testing::HasSubstr("kernel.modprobe could not be emptied"));
    EXPECT_FALSE(ctx_.lock.locked);
    auto audit = kernel_.Calls(KernelOp::kAudit);
    ASSERT_EQ(audit.size(), 1u);
    EXPECT_THAT(audit[0].args, ::testing::EndsWith("res=failed"));
}

TEST_F(LockdownStageTest, AuditUnavailableDoesNotStopTheFallbackLock) {
    kernel_.SetUnpatched(true);
    kernel_.SetAuditAvailable(false);
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_TRUE(ctx_.lock.locked);
    EXPECT_EQ(kernel_.Sysctl("kernel/modules_disabled"), "1");
}

}  // namespace
}  // namespace peinit
