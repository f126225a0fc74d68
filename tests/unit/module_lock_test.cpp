// peinit/sys/module_lock: the one lock + read-back + fallback behind PID 1's lock stage and
// `peinitctl lock`, and the one "is module loading locked" behind the hot-add path, on the fake
// kernel: patched, unpatched, without SeTcb.

#include "peinit/sys/module_lock.h"

#include <gtest/gtest.h>
#include <linux/module_lockdown.h>

#include <cerrno>

#include "tests/fakes/fake_kernel.h"

namespace peinit {
namespace {

TEST(ModuleLock, PatchedKernelLocksWithTheSyscallAndReadsItBack) {
    FakeKernel kernel;
    auto before = ModuleLoadingLocked(kernel);
    ASSERT_TRUE(before) << before.error().message();
    EXPECT_FALSE(*before);

    LockAttempt lock = LockModuleLoading(kernel, MODULE_LOCKDOWN_TRIGGER_REGISTRY,
                                         LockFallback::kOnUnpatchedKernel, "boot-orchestrator-step");
    ASSERT_TRUE(lock.result) << lock.result.error().message();
    EXPECT_EQ(lock.mechanism, "syscall");
    EXPECT_FALSE(lock.was_locked);
    EXPECT_EQ(lock.read_back, "module_lockdown(QUERY)=1, kernel.module_loading_locked=1");
    EXPECT_TRUE(kernel.IsLocked());
    auto after = ModuleLoadingLocked(kernel);
    ASSERT_TRUE(after);
    EXPECT_TRUE(*after);

    // Again: a no-op the caller can tell from a first lock.
    LockAttempt again = LockModuleLoading(kernel, MODULE_LOCKDOWN_TRIGGER_RUNTIME,
                                          LockFallback::kNever, "runtime-syscall");
    EXPECT_TRUE(again.result);
    EXPECT_TRUE(again.was_locked);
}

TEST(ModuleLock, WithoutSeTcbNothingChangesAndTheStateIsReadBack) {
    FakeKernel kernel;
    kernel.SetPrivileged(false);
    LockAttempt lock = LockModuleLoading(kernel, MODULE_LOCKDOWN_TRIGGER_RUNTIME,
                                         LockFallback::kOnUnpatchedKernel, "runtime-syscall");
    EXPECT_FALSE(lock.result);
    EXPECT_EQ(lock.syscall_errno, EPERM);
    EXPECT_EQ(lock.mechanism, "");
    EXPECT_EQ(lock.read_back, "module_lockdown(QUERY)=0, kernel.module_loading_locked=0");
    EXPECT_FALSE(kernel.IsLocked());
}

TEST(ModuleLock, UnpatchedKernelFallsBackOnlyWhenAllowed) {
    FakeKernel kernel;
    kernel.SetUnpatched(true);
    kernel.SetSysctl("kernel/modules_disabled", "0");
    kernel.SetSysctl("kernel/modprobe", "/sbin/modprobe");
    auto open = ModuleLoadingLocked(kernel);
    ASSERT_TRUE(open) << open.error().message();
    EXPECT_FALSE(*open);

    LockAttempt refused = LockModuleLoading(kernel, MODULE_LOCKDOWN_TRIGGER_RUNTIME,
                                            LockFallback::kNever, "runtime-syscall");
    EXPECT_FALSE(refused.result);
    EXPECT_EQ(refused.syscall_errno, ENOSYS);
    EXPECT_EQ(refused.mechanism, "");
    EXPECT_EQ(*kernel.ReadSysctl("kernel/modules_disabled"), "0") << "nothing may be written";

    LockAttempt lock = LockModuleLoading(kernel, MODULE_LOCKDOWN_TRIGGER_BOOT,
                                         LockFallback::kOnUnpatchedKernel, "boot-orchestrator-step");
    ASSERT_TRUE(lock.result) << lock.result.error().message();
    EXPECT_EQ(lock.mechanism, "modules_disabled");
    EXPECT_EQ(lock.read_back, "kernel.modules_disabled=1, kernel.modprobe=\"\"");
    EXPECT_EQ(lock.audit, "sent");
    auto locked = ModuleLoadingLocked(kernel);
    ASSERT_TRUE(locked);
    EXPECT_TRUE(*locked);
}

TEST(ModuleLock, UnpatchedFallbackNeedsSeTcbToo) {
    FakeKernel kernel;
    kernel.SetUnpatched(true);
    kernel.SetPrivileged(false);
    kernel.SetSysctl("kernel/modules_disabled", "0");
    LockAttempt lock = LockModuleLoading(kernel, MODULE_LOCKDOWN_TRIGGER_RUNTIME,
                                         LockFallback::kOnUnpatchedKernel, "runtime-syscall");
    ASSERT_FALSE(lock.result);
    EXPECT_EQ(lock.result.error().code(), EPERM);
    EXPECT_NE(lock.result.error().message().find("SeTcbPrivilege (CAP_SYS_ADMIN) required"),
              std::string::npos);
    EXPECT_EQ(*kernel.ReadSysctl("kernel/modules_disabled"), "0");
}

// Not knowing is not "unlocked": the hot-add path refuses to load on an error.
TEST(ModuleLock, AnUnreadableStateIsAnErrorNotAnAnswer) {
    FakeKernel kernel;
    kernel.SetUnpatched(true);
    kernel.SetOpError(KernelOp::kReadSysctl, "kernel/modules_disabled", EACCES);
    auto locked = ModuleLoadingLocked(kernel);
    ASSERT_FALSE(locked);
    EXPECT_NE(locked.error().message().find("kernel.modules_disabled"), std::string::npos);
}

}  // namespace
}  // namespace peinit
