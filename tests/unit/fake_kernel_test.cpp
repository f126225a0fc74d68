#include "tests/fakes/fake_kernel.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/module_lockdown.h>

#include <future>
#include <thread>

namespace peinit {
namespace {

using ::testing::ElementsAre;
using namespace std::chrono_literals;

Result<void> Load(FakeKernel& k, const std::string& name, const std::string& params = "") {
    return k.FinitModule(3, name, params, 0);
}

TEST(FakeKernel, LoadsRecordAndSecondLoadIsEexist) {
    FakeKernel k;
    ASSERT_TRUE(Load(k, "e1000e", "debug=1"));
    auto again = Load(k, "e1000e");
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().code(), EEXIST);
    EXPECT_EQ(again.error().message(), "finit_module e1000e: File exists");
    // init_module of the same module (dash spelling) is the same module to the kernel.
    EXPECT_EQ(k.InitModule("e1000-e", {}, "").error().code(), 0);
    EXPECT_EQ(k.InitModule("e1000e", {}, "").error().code(), EEXIST);

    auto calls = k.Calls();
    ASSERT_EQ(calls.size(), 4u);
    EXPECT_EQ(calls[0].op, KernelOp::kFinitModule);
    EXPECT_EQ(calls[0].name, "e1000e");
    EXPECT_EQ(calls[0].args, "debug=1");
    EXPECT_EQ(calls[0].error, 0);
    EXPECT_EQ(calls[1].error, EEXIST);
    EXPECT_EQ(calls[2].op, KernelOp::kInitModule);
    EXPECT_LE(calls[0].start, calls[0].end);
    EXPECT_LE(calls[0].end, calls[1].start);
    EXPECT_THAT(k.LoadedModules(), ElementsAre("e1000e", "e1000_e"));
}

TEST(FakeKernel, ScriptedErrnoPerModule) {
    FakeKernel k;
    k.SetModuleError("bad", ENOEXEC);
    k.SetModuleError("unsigned", EKEYREJECTED);
    EXPECT_EQ(Load(k, "bad").error().code(), ENOEXEC);
    EXPECT_EQ(Load(k, "unsigned").error().code(), EKEYREJECTED);
    EXPECT_TRUE(Load(k, "good"));
    EXPECT_THAT(k.LoadedModules(), ElementsAre("good"));
    k.SetLoaded("builtin_like");
    EXPECT_EQ(Load(k, "builtin_like").error().code(), EEXIST);
}

TEST(FakeKernel, DeleteModule) {
    FakeKernel k;
    EXPECT_EQ(k.DeleteModule("absent", 0).error().code(), ENOENT);
    ASSERT_TRUE(Load(k, "loop"));
    EXPECT_TRUE(k.DeleteModule("loop", O_NONBLOCK));
    EXPECT_THAT(k.LoadedModules(), ::testing::IsEmpty());
    EXPECT_TRUE(Load(k, "loop"));  // reloadable after removal
}

// Waits until a load is in flight in `k` (so a racing load is guaranteed to find it).
void WaitForLoadInFlight(const FakeKernel& k) {
    while (k.MaxConcurrentLoads() == 0) std::this_thread::sleep_for(1ms);
}

TEST(FakeKernel, LatencyRunsOutsideTheLockSoLoadsOverlap) {
    FakeKernel k;
    k.SetModuleLatency("a", 300ms);
    k.SetModuleLatency("b", 300ms);
    auto fa = std::async(std::launch::async, [&] { return Load(k, "a").has_value(); });
    auto fb = std::async(std::launch::async, [&] { return Load(k, "b").has_value(); });
    EXPECT_TRUE(fa.get());
    EXPECT_TRUE(fb.get());
    EXPECT_EQ(k.MaxConcurrentLoads(), 2) << "the two loads did not overlap";
    auto calls = k.Calls();
    ASSERT_EQ(calls.size(), 2u);
    EXPECT_LT(calls[0].start, calls[1].end);
    EXPECT_LT(calls[1].start, calls[0].end);
    EXPECT_NE(calls[0].thread, calls[1].thread);
    for (const auto& c : calls) EXPECT_GE(c.end - c.start, 300ms);
}

TEST(FakeKernel, RacingLoadsOfOneModuleWaitThenEexist) {
    FakeKernel k;
    k.SetModuleLatency("slow", 100ms);
    auto first = std::async(std::launch::async, [&] { return Load(k, "slow").error().code(); });
    WaitForLoadInFlight(k);
    int second = Load(k, "slow").error().code();
    EXPECT_EQ(first.get(), 0);
    EXPECT_EQ(second, EEXIST);
    EXPECT_EQ(k.MaxConcurrentLoads(), 1);
    auto calls = k.Calls();
    ASSERT_EQ(calls.size(), 2u);
    const KernelCall& ok = calls[0].error == 0 ? calls[0] : calls[1];
    const KernelCall& racing = calls[0].error == 0 ? calls[1] : calls[0];
    EXPECT_EQ(ok.error, 0);
    EXPECT_EQ(racing.error, EEXIST);
    // The racing load returned only after the first one finished, as the kernel's does.
    EXPECT_GE(racing.end, ok.start + 100ms);
}

TEST(FakeKernel, RacingLoadAfterAFailedOneProceeds) {
    FakeKernel k;
    k.SetModuleLatency("flaky", 80ms);
    k.SetModuleError("flaky", EIO);
    auto first = std::async(std::launch::async, [&] { return Load(k, "flaky").error().code(); });
    WaitForLoadInFlight(k);
    EXPECT_EQ(Load(k, "flaky").error().code(), EIO);  // its own attempt, not EEXIST
    EXPECT_EQ(first.get(), EIO);
    EXPECT_EQ(k.Calls(KernelOp::kFinitModule).size(), 2u);
}

TEST(FakeKernel, ManyThreadsEachModuleLoadsOnce) {
    FakeKernel k;
    std::vector<std::future<int>> results;
    for (int t = 0; t < 8; ++t) {
        results.push_back(std::async(std::launch::async, [&, t] {
            int ok = 0;
            for (int m = 0; m < 20; ++m)
                ok += Load(k, "mod" + std::to_string((m + t) % 20)) ? 1 : 0;
            return ok;
        }));
    }
    int total = 0;
    for (auto& r : results) total += r.get();
    EXPECT_EQ(total, 20);
    EXPECT_EQ(k.LoadedModules().size(), 20u);
    EXPECT_EQ(k.Calls(KernelOp::kFinitModule).size(), 160u);
}

TEST(FakeKernel, LockdownQueryAndLock) {
    FakeKernel k;
    EXPECT_EQ(*k.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 0), 0);
    EXPECT_EQ(*k.ModuleLockdown(MODULE_LOCKDOWN_QUERY, MODULE_LOCKDOWN_TRIGGER_BOOT), 0);
    EXPECT_EQ(k.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 99).error().code(), EINVAL);
    EXPECT_EQ(k.ModuleLockdown(7, MODULE_LOCKDOWN_TRIGGER_BOOT).error().code(), EINVAL);
    EXPECT_EQ(k.ModuleLockdown(MODULE_LOCKDOWN_LOCK, 0).error().code(), EINVAL);
    EXPECT_FALSE(k.IsLocked());
    EXPECT_EQ(*k.ReadSysctl("kernel/module_loading_locked"), "0");

    EXPECT_EQ(*k.ModuleLockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_REGISTRY), 0);
    EXPECT_TRUE(k.IsLocked());
    EXPECT_EQ(*k.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 0), 1);
    // Repeated LOCK: a no-op returning 0; the first trigger is the one that set it.
    EXPECT_EQ(*k.ModuleLockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME), 0);
    EXPECT_EQ(k.LockTrigger(), MODULE_LOCKDOWN_TRIGGER_REGISTRY);
    EXPECT_EQ(*k.ReadSysctl("kernel/module_loading_locked"), "1");
    // read-only.
    EXPECT_EQ(k.WriteSysctl("kernel/module_loading_locked", "0").error().code(), EACCES);
    EXPECT_TRUE(k.IsLocked());
    auto calls = k.Calls(KernelOp::kModuleLockdown);
    EXPECT_EQ(calls.back().args, "op=1 trigger=2");
}

TEST(FakeKernel, LockWithoutSeTcbIsEpermAndChangesNothing) {
    FakeKernel k;
    k.SetPrivileged(false);
    auto r = k.ModuleLockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EPERM);
    EXPECT_FALSE(k.IsLocked());
    EXPECT_EQ(*k.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 0), 0);  // QUERY needs no privilege
    EXPECT_TRUE(Load(k, "still_loadable"));
}

TEST(FakeKernel, LockedKernelRefusesEveryModuleOperation) {
    FakeKernel k;
    ASSERT_TRUE(Load(k, "before"));
    k.SetModuleLatency("slow", 500ms);
    ASSERT_TRUE(k.ModuleLockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_BOOT));
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(Load(k, "slow").error().code(), EPERM);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 400ms) << "checked before anything else";
    EXPECT_EQ(Load(k, "before").error().code(), EPERM);  // not EEXIST: the lock comes first
    EXPECT_EQ(k.InitModule("x", {}, "").error().code(), EPERM);
    EXPECT_EQ(k.DeleteModule("before", 0).error().code(), EPERM);
    EXPECT_THAT(k.LoadedModules(), ElementsAre("before"));
}

// the one-way autoload gates, as the kernel patch has them (kernel/README.md).
TEST(FakeKernel, AutoloadGatesAreOneWayAndReadable) {
    FakeKernel k;
    EXPECT_EQ(*k.ModuleLockdown(MODULE_LOCKDOWN_QUERY_AUTOLOAD, 0), 0);
    EXPECT_EQ(*k.ModuleLockdown(MODULE_LOCKDOWN_QUERY_MODPROBE, 0), 0);
    EXPECT_EQ(*k.ReadSysctl("kernel/module_autoload_disabled"), "0");
    EXPECT_EQ(k.ModuleLockdown(MODULE_LOCKDOWN_SEAL_MODPROBE, 0).error().code(), EINVAL);
    k.SetPrivileged(false);
    EXPECT_EQ(k.ModuleLockdown(MODULE_LOCKDOWN_SEAL_MODPROBE, MODULE_LOCKDOWN_TRIGGER_BOOT)
                  .error().code(),
              EPERM);
    EXPECT_FALSE(k.IsModprobeSealed());
    k.SetPrivileged(true);
    ASSERT_TRUE(k.ModuleLockdown(MODULE_LOCKDOWN_SEAL_MODPROBE, MODULE_LOCKDOWN_TRIGGER_BOOT));
    ASSERT_TRUE(k.ModuleLockdown(MODULE_LOCKDOWN_SEAL_MODPROBE, MODULE_LOCKDOWN_TRIGGER_BOOT));
    EXPECT_EQ(*k.ModuleLockdown(MODULE_LOCKDOWN_QUERY_MODPROBE, 0), 1);
    EXPECT_EQ(*k.ReadSysctl("kernel/modprobe_sealed"), "1");
    EXPECT_EQ(k.WriteSysctl("kernel/modprobe", "/tmp/x").error().code(), EPERM);
    EXPECT_EQ(k.WriteSysctl("kernel/modprobe_sealed", "0").error().code(), EACCES);
    ASSERT_TRUE(k.ModuleLockdown(MODULE_LOCKDOWN_DISABLE_AUTOLOAD, MODULE_LOCKDOWN_TRIGGER_REGISTRY));
    EXPECT_TRUE(k.IsAutoloadDisabled());
    EXPECT_FALSE(k.IsLocked());  // neither gate locks module loading
    EXPECT_TRUE(Load(k, "explicit_still_loads"));

    FakeKernel old;
    old.SetNoAutoloadGates(true);
    EXPECT_EQ(old.ModuleLockdown(MODULE_LOCKDOWN_QUERY_AUTOLOAD, 0).error().code(), EINVAL);
    EXPECT_EQ(old.ReadSysctl("kernel/modprobe_sealed").error().code(), ENOENT);
    EXPECT_EQ(*old.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 0), 0);
}

TEST(FakeKernel, UnpatchedKernelFallsBackToModulesDisabled) {
    FakeKernel k;
    k.SetUnpatched(true);
    EXPECT_EQ(k.ModuleLockdown(MODULE_LOCKDOWN_QUERY, 0).error().code(), ENOSYS);
    EXPECT_EQ(k.ModuleLockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_BOOT).error().code(),
              ENOSYS);
    EXPECT_EQ(k.ReadSysctl("kernel/module_loading_locked").error().code(), ENOENT);

    // R-18's fallback: modules_disabled=1 (one-way) and an empty modprobe path.
    EXPECT_EQ(k.WriteSysctl("kernel/modules_disabled", "0").error().code(), EINVAL);
    ASSERT_TRUE(k.WriteSysctl("kernel/modules_disabled", "1\n"));
    EXPECT_EQ(k.WriteSysctl("kernel/modules_disabled", "0").error().code(), EINVAL);
    EXPECT_EQ(*k.ReadSysctl("kernel/modules_disabled"), "1");
    EXPECT_EQ(Load(k, "any").error().code(), EPERM);
    EXPECT_EQ(*k.ReadSysctl("kernel/modprobe"), "/sbin/modprobe");
    ASSERT_TRUE(k.WriteSysctl("kernel/modprobe", "\n"));
    EXPECT_EQ(*k.ReadSysctl("kernel/modprobe"), "");
    EXPECT_EQ(k.WriteSysctl("kernel/no_such_knob", "1").error().code(), ENOENT);
}

TEST(FakeKernel, SigEnforceIsOneWay) {
    FakeKernel k;
    EXPECT_EQ(*k.ReadSysfs(FakeKernel::kSigEnforcePath), "N");
    EXPECT_TRUE(k.WriteSysfs(FakeKernel::kSigEnforcePath, "0"));  // already off: fine
    EXPECT_EQ(k.WriteSysfs(FakeKernel::kSigEnforcePath, "maybe").error().code(), EINVAL);
    EXPECT_TRUE(k.WriteSysfs(FakeKernel::kSigEnforcePath, "1"));
    EXPECT_EQ(*k.ReadSysfs(FakeKernel::kSigEnforcePath), "Y");
    EXPECT_EQ(k.WriteSysfs(FakeKernel::kSigEnforcePath, "0").error().code(), EROFS);
    EXPECT_EQ(*k.ReadSysfs(FakeKernel::kSigEnforcePath), "Y");
    EXPECT_EQ(k.ReadSysfs("class/nope").error().code(), ENOENT);
}

TEST(FakeKernel, OtherOperationsAreLoggedInOrderAndScriptable) {
    FakeKernel k;
    k.SetOpError(KernelOp::kMount, "/sys", EBUSY);
    EXPECT_TRUE(k.Mount("proc", "/proc", "proc", 0, ""));
    auto sys = k.Mount("sysfs", "/sys", "sysfs", 0, "");
    EXPECT_EQ(sys.error().code(), EBUSY);
    EXPECT_EQ(sys.error().message(), "mount /sys: Device or resource busy");
    EXPECT_TRUE(k.MakeDir("/run", 0755));
    EXPECT_TRUE(k.Mknod("/dev/kmsg", 020644, 0x10b));
    auto pid = k.Spawn({"/bin/svc", "-x"}, {"A=1"}, SpawnOptions{.uid = 1000, .gid = {}, .drop_capabilities = {}});
    ASSERT_TRUE(pid);
    EXPECT_GT(*pid, 1);
    EXPECT_EQ(k.Spawn({}, {}, {}).error().code(), EINVAL);
    EXPECT_TRUE(k.SwitchRoot("/sysroot"));
    EXPECT_TRUE(k.Exec({"/sbin/init"}, {}));
    EXPECT_TRUE(k.Reboot(0x4321fedc));
    EXPECT_TRUE(k.Umount("/proc", 0));

    std::vector<std::string> ops;
    for (const auto& c : k.Calls()) ops.push_back(std::string(ToString(c.op)) + " " + c.name);
    EXPECT_THAT(ops, ElementsAre("mount /proc", "mount /sys", "mkdir /run", "mknod /dev/kmsg",
                                 "spawn /bin/svc", "spawn ", "switch_root /sysroot",
                                 "exec /sbin/init", "reboot reboot", "umount /proc"));
    EXPECT_EQ(k.Calls(KernelOp::kSpawn)[0].args, "/bin/svc -x | A=1 | uid=1000");
}

}  // namespace
}  // namespace peinit
