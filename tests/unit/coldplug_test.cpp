// The coldplug stage on fixture modaliases: resolution against the synthetic tree
// tests/fixtures/roots/autoload, the shared demand-load policy, loads from signed packages through
// FakeKernel, outcomes and the boot record; the sysfs enumeration on a sysfs-shaped tree (the
// QEMU boot tests cover it on a real one).

#include "stages/coldplug/coldplug.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/module_lockdown.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "peinit/modload/session.h"
#include "stages/lockdown/lockdown.h"
#include "stages/modules/modules.h"
#include "stages/stage.h"
#include "tests/fakes/fake_kernel.h"
#include "tests/unit/captured_log.h"
#include "tests/unit/demand_root.h"

namespace peinit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using Status = ModuleOutcome::Status;

using testing::kBad;
using testing::kBlDep;
using testing::kE1000e;
using testing::kUnknown;
using testing::kVirtioNet;
using testing::kVirtioNet2;

class ColdplugTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(root_.Make());
        ctx_.paths = root_.Paths();
        ctx_.kernel_release = testing::kFixtureKver;
    }

    // The module stage with one unit loading `modules`, as the boot runs it before coldplug.
    void RunModuleStage(const std::vector<std::string>& modules) {
        std::string text;
        for (const auto& m : modules) text += "[[module]]\nname = \"" + m + "\"\n";
        ConfigErrors errors;
        auto unit = ParseUnitFile("units/boot.toml", text, errors);
        ASSERT_TRUE(unit);
        std::vector<Unit> units;
        units.push_back(std::move(*unit));
        ctx_.units = LinkUnits(std::move(units), errors);
        ASSERT_TRUE(errors.empty());
        auto r = RunModules(ctx_);
        ASSERT_TRUE(r) << r.error().message();
    }
    void Run(const std::vector<DeviceModalias>& devices) {
        auto r = Coldplug(ctx_, devices);
        ASSERT_TRUE(r) << r.error().message();
    }
    std::vector<std::string> Loads() const { return kernel_.CallNames(KernelOp::kInitModule); }
    const ModuleOutcome* Outcome(const std::string& name) const {
        for (const auto& o : ctx_.module_outcomes) {
            if (o.module == name) return &o;
        }
        return nullptr;
    }
    std::string Record() const {
        std::string r = testing::ReadFileOrEmpty(root_.root() / "run/peinit/coldplug.json");
        r.erase(std::remove_if(r.begin(), r.end(), [](char c) { return std::isspace(c); }),
                r.end());
        return r;
    }

    testing::DemandRoot root_;
    FakeKernel kernel_;
    BootContext ctx_{kernel_};
    testing::CapturedLog log_{"coldplug-test"};
};

TEST_F(ColdplugTest, LoadsDriversWithDependenciesFirst) {
    Run({kUnknown, kVirtioNet, kE1000e});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net", "e1000e"));
    const ModuleOutcome* o = Outcome("virtio_net");
    ASSERT_NE(o, nullptr);
    EXPECT_EQ(o->status, Status::kLoaded);
    EXPECT_EQ(o->package, "all.pkg");
    EXPECT_THAT(o->requested_by, ElementsAre("coldplug " + kVirtioNet.syspath));
    ASSERT_NE(Outcome("failover"), nullptr);
    EXPECT_THAT(Outcome("failover")->requested_by.front(),
                HasSubstr("coldplug " + kVirtioNet.syspath));
    EXPECT_THAT(log_.str(), HasSubstr("coldplug: loaded virtio_net for " + kVirtioNet.syspath));
    EXPECT_THAT(log_.str(),
                HasSubstr("coldplug done devices=3 matched=2 loaded=4 refused=0 failed=0"));
    EXPECT_THAT(Record(), HasSubstr("\"modalias\":\"virtio:d00000001v00001AF4\""));
    EXPECT_THAT(Record(), HasSubstr("\"modules\":[\"virtio_net\"]"));
}

// One module-loading session per boot: coldplug reuses the module stage's libkmod context and
// verified packages, and no module is handed to the kernel twice.
TEST_F(ColdplugTest, ReusesTheBootSessionAndLoadsNothingTwice) {
    RunModuleStage({"virtio_net"});
    ASSERT_NE(ctx_.modload, nullptr);
    const ModloadSession* session = ctx_.modload.get();
    Run({kVirtioNet, kVirtioNet2, kE1000e});
    ASSERT_EQ(ctx_.modload.get(), session);
    EXPECT_EQ(session->counters().db_opens, 1);
    EXPECT_EQ(session->counters().package_set_loads, 1);
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net", "e1000e"));
    EXPECT_EQ(session->counters().load_calls, 4);
    // Only the members that loaded were hashed, each once.
    auto reports = ctx_.modload->Packages().reports();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_TRUE(reports[0].verified);
    EXPECT_EQ(reports[0].hashed, 4u);
}

// A member outside the boot set is hashed on first use: tampered, it is refused with the
// reason, and the boot set (hashed before the first load) was not affected.
TEST_F(ColdplugTest, TamperedMemberOutsideTheBootSetIsRefusedOnFirstUse) {
    root_.Tamper("e1000e");
    RunModuleStage({"virtio_net"});
    EXPECT_EQ(Outcome("virtio_net")->status, Status::kLoaded);
    Run({kE1000e});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
    ASSERT_NE(Outcome("e1000e"), nullptr);
    EXPECT_EQ(Outcome("e1000e")->status, Status::kFailed);
    EXPECT_THAT(Outcome("e1000e")->reason,
                ::testing::StartsWith("package rejected (all.pkg: hash-mismatch: modules/e1000e.ko"));
    EXPECT_THAT(Record(), HasSubstr("hash-mismatch:modules/e1000e.ko"));
    // From then on the package hands out nothing more.
    ModuleSource later = ctx_.modload->Packages().Find("af_packet");
    EXPECT_EQ(later.file, nullptr);
    EXPECT_THAT(later.failure, ::testing::StartsWith("package rejected (all.pkg: hash-mismatch"));
}

// PID 1 reads and hashes the packages ahead, on a thread of its own; the module stage takes the
// set over (no second read) and judges only what it needs: a tampered member outside the boot
// set is still refused only on first use.
TEST_F(ColdplugTest, PrefetchedPackagesAreTakenOverAndJudgedOnlyWhenNeeded) {
    root_.Tamper("e1000e");
    const BootPaths paths = root_.Paths();
    ctx_.background.Start<PackagePrefetch>(
        std::string(kPackagePrefetch),
        PackagePrefetch::Start(paths.PackagesDir(), paths.TrustedKeysDir(), testing::kFixtureKver),
        nullptr);
    ASSERT_TRUE(ctx_.background.Running(kPackagePrefetch));
    RunModuleStage({"virtio_net"});
    EXPECT_FALSE(ctx_.background.Running(kPackagePrefetch));
    EXPECT_EQ(Outcome("virtio_net")->status, Status::kLoaded);
    EXPECT_EQ(ctx_.modload->counters().package_set_loads, 1);
    Run({kE1000e});
    EXPECT_EQ(Outcome("e1000e")->status, Status::kFailed);
    EXPECT_THAT(Outcome("e1000e")->reason,
                ::testing::StartsWith("package rejected (all.pkg: hash-mismatch: modules/e1000e.ko"));
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
}

TEST_F(ColdplugTest, EachModuleOnceAndAlreadyLoadedSkipped) {
    ctx_.module_outcomes.push_back({});  // the module stage's outcomes are kept
    Run({kVirtioNet, kVirtioNet2});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
    EXPECT_EQ(ctx_.module_outcomes.size(), 4u);
    // Live before coldplug (loaded by the module stage, or built in): nothing is handed to the
    // kernel again and nothing is recorded twice.
    FakeKernel k2;
    k2.SetLoaded("e1000e");
    BootContext c2(k2);
    c2.paths = root_.Paths();
    c2.kernel_release = testing::kFixtureKver;
    ASSERT_TRUE(Coldplug(c2, {kE1000e}));
    EXPECT_THAT(c2.module_outcomes, IsEmpty());
    EXPECT_THAT(k2.Calls(KernelOp::kInitModule), IsEmpty());
}

TEST_F(ColdplugTest, AllowListAppliesToTheResolvedDriverOnly) {
    ctx_.policy.autoload = {AutoLoadPolicy::kAllowList, PolicySource::kHive};
    ctx_.policy.autoload_allowed = {"virtio_net"};
    Run({kVirtioNet, kE1000e});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
    const ModuleOutcome* o = Outcome("e1000e");
    ASSERT_NE(o, nullptr);
    EXPECT_EQ(o->status, Status::kSkipped);
    EXPECT_EQ(o->reason, "refused: not in AutoLoadAllowed");
    EXPECT_THAT(log_.str(), HasSubstr("coldplug: refused e1000e for " + kE1000e.syspath +
                                      " (alias " + kE1000e.modalias + "): not in AutoLoadAllowed"));
    EXPECT_THAT(log_.str(), HasSubstr("loaded=3 refused=1 failed=0"));
}

TEST_F(ColdplugTest, DisabledLoadsNothing) {
    ctx_.policy.autoload = {AutoLoadPolicy::kDisabled, PolicySource::kFallback};
    Run({kVirtioNet, kE1000e});
    EXPECT_THAT(Loads(), IsEmpty());
    EXPECT_THAT(log_.str(), HasSubstr("AutoLoadPolicy is disabled"));
    EXPECT_THAT(log_.str(), HasSubstr("loaded=0 refused=2 failed=0"));
}

// SigningPolicy=enforce holds for coldplug too: when the kernel does not enforce signatures
// (module.sig_enforce reads N, nothing could set it), coldplug loads nothing and says why.
TEST_F(ColdplugTest, EnforceThatIsNotInEffectLoadsNothing) {
    ctx_.policy.signing = {SigningPolicy::kEnforce, PolicySource::kHive};
    Run({kVirtioNet, kE1000e});
    EXPECT_THAT(Loads(), IsEmpty());
    ASSERT_NE(Outcome("e1000e"), nullptr);
    EXPECT_EQ(Outcome("e1000e")->status, Status::kFailed);
    EXPECT_THAT(Outcome("e1000e")->reason,
                HasSubstr("SigningPolicy=enforce is not in effect (module.sig_enforce reads N)"));
    // Once the kernel enforces, the same devices get their drivers.
    ctx_.module_outcomes.clear();
    ctx_.modload.reset();
    ASSERT_TRUE(kernel_.WriteSysfs(kSigEnforceSysfs, "1"));
    Run({kE1000e});
    EXPECT_THAT(Loads(), ElementsAre("e1000e"));
}

TEST_F(ColdplugTest, BlacklistsApply) {
    ctx_.policy.blacklist = {{"e1000e", PolicySource::kHive}};
    Run({kE1000e, kBad, kBlDep});
    EXPECT_THAT(Loads(), IsEmpty());
    ASSERT_NE(Outcome("e1000e"), nullptr);
    EXPECT_EQ(Outcome("e1000e")->status, Status::kBlacklisted);
    ASSERT_NE(Outcome("bad_drv"), nullptr);
    EXPECT_EQ(Outcome("bad_drv")->status, Status::kBlacklisted);
    EXPECT_THAT(Outcome("bad_drv")->reason, HasSubstr("autoload.conf"));
    ASSERT_NE(Outcome("bl_dep_user"), nullptr);
    EXPECT_EQ(Outcome("bl_dep_user")->status, Status::kSkipped);
    EXPECT_THAT(Outcome("bl_dep_user")->reason, HasSubstr("bl_dep"));
    EXPECT_THAT(log_.str(), HasSubstr("refused=2"));
}

TEST_F(ColdplugTest, DemandLoadFailuresAreRecordedAndTheRestGoesOn) {
    kernel_.SetModuleError("net_failover", ENOEXEC);
    Run({kVirtioNet, kE1000e});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "e1000e"));
    EXPECT_EQ(Outcome("net_failover")->status, Status::kFailed);
    EXPECT_EQ(Outcome("net_failover")->error, ENOEXEC);
    EXPECT_EQ(Outcome("virtio_net")->status, Status::kSkipped);
    EXPECT_EQ(Outcome("virtio_net")->reason, "dependency net_failover failed (ENOEXEC)");
    EXPECT_EQ(Outcome("e1000e")->status, Status::kLoaded);
    EXPECT_THAT(log_.str(), HasSubstr("failed=2"));
}

TEST_F(ColdplugTest, NoModuleTreeIsNotAnError) {
    ctx_.kernel_release = "9.9.9-none";
    Run({kVirtioNet});
    EXPECT_THAT(Loads(), IsEmpty());
    EXPECT_THAT(log_.str(), HasSubstr("no module tree"));
}


// Issue 24 point 4: the packages read ahead on PID 1's thread: whatever that thread throws is
// contained and reported, and the module stage reads and checks the packages itself.
TEST_F(ColdplugTest, PrefetchThatThrowsIsReportedAndThePackagesAreReadAgain) {
    ctx_.background.Start<PackagePrefetch>(
        std::string(kPackagePrefetch),
        PackagePrefetch::StartWith(
            testing::kFixtureKver,
            []() -> std::unique_ptr<PackageSet> { throw std::runtime_error("injected"); }),
        nullptr);
    ASSERT_TRUE(ctx_.background.Running(kPackagePrefetch));
    RunModuleStage({"virtio_net"});
    EXPECT_EQ(Outcome("virtio_net")->status, Status::kLoaded);
    EXPECT_THAT(log_.str(), HasSubstr("packages read ahead: unexpected exception: injected: "
                                      "reading them again"));
    EXPECT_EQ(ctx_.modload->counters().package_set_loads, 1);
}

// --- Settling (R-37) -------------------------------------------------------------------------

// Devices that appear because a module loaded, as a bus driver's children do: once `module` is
// live in the fake kernel, its device is reported (once). Records every wait it was asked for.
class LoadsAddDevices final : public DeviceEvents {
  public:
    LoadsAddDevices(const FakeKernel& kernel, std::map<std::string, DeviceModalias> on_load)
        : kernel_(kernel), on_load_(std::move(on_load)) {}
    std::vector<DeviceModalias> Added(std::chrono::milliseconds wait) override {
        waits.push_back(wait);
        std::vector<DeviceModalias> out;
        for (const auto& m : kernel_.LoadedModules()) {
            auto it = on_load_.find(m);
            if (it != on_load_.end() && reported_.insert(m).second) out.push_back(it->second);
        }
        return out;
    }
    std::vector<std::chrono::milliseconds> waits;

  private:
    const FakeKernel& kernel_;
    std::map<std::string, DeviceModalias> on_load_;
    std::set<std::string> reported_;
};

// A device that never stops adding devices: every call (after a short wait) reports a new one,
// and the device coldplug already handled again.
class EndlessDevices final : public DeviceEvents {
  public:
    std::vector<DeviceModalias> Added(std::chrono::milliseconds wait) override {
        (void)wait;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ++calls;
        return {kUnknown, {"/sys/devices/platform/flood." + std::to_string(calls), "platform:flood"}};
    }
    int calls = 0;
};

SettleLimits Limits(int quiet_ms, int timeout_ms) {
    SettleLimits l;
    l.quiet = std::chrono::milliseconds(quiet_ms);
    l.timeout = std::chrono::milliseconds(timeout_ms);
    return l;
}

// A driver coldplug loads adds a device (virtio_net's load adds the e1000e device): it gets its
// driver in a second round, before the lockdown stage locks; then coldplug waits one quiet
// period more and stops.
TEST_F(ColdplugTest, SettlesDevicesAddedByItsOwnLoadsBeforeTheLock) {
    LoadsAddDevices events(kernel_, {{"virtio_net", kE1000e}});
    ASSERT_TRUE(Coldplug(ctx_, {kVirtioNet}, &events, Limits(40, 5000)));
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net", "e1000e"));
    ASSERT_NE(Outcome("e1000e"), nullptr);
    EXPECT_EQ(Outcome("e1000e")->status, Status::kLoaded);
    EXPECT_THAT(Outcome("e1000e")->requested_by, ElementsAre("coldplug " + kE1000e.syspath));
    // Round 2 found it; round 3's wait was a whole quiet period without a device.
    EXPECT_THAT(events.waits, ElementsAre(std::chrono::milliseconds(40),
                                          std::chrono::milliseconds(40)));
    EXPECT_THAT(log_.str(), HasSubstr("coldplug done devices=2 matched=2 loaded=4 refused=0 "
                                      "failed=0 rounds=2 settled=yes"));
    EXPECT_THAT(Record(), HasSubstr("\"syspath\":\"" + kE1000e.syspath));
    EXPECT_THAT(Record(), HasSubstr("\"round\":2"));
    EXPECT_THAT(Record(), HasSubstr("\"rounds\":2,\"settled\":true"));
    EXPECT_THAT(ctx_.coldplug_left, IsEmpty());

    // The lock comes after the last load.
    ctx_.policy.lock_after_boot = {true, PolicySource::kHive};
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_TRUE(kernel_.IsLocked());
    const auto calls = kernel_.Calls();
    auto last_load = std::find_if(calls.rbegin(), calls.rend(), [](const KernelCall& c) {
        return c.op == KernelOp::kInitModule;
    });
    auto lock = std::find_if(calls.begin(), calls.end(), [](const KernelCall& c) {
        return c.op == KernelOp::kModuleLockdown && c.args.starts_with("op=" + std::to_string(MODULE_LOCKDOWN_LOCK) + " ");
    });
    ASSERT_NE(last_load, calls.rend());
    ASSERT_NE(lock, calls.end());
    EXPECT_EQ(last_load->name, "e1000e");
    EXPECT_LT(std::distance(calls.begin(), last_load.base() - 1), std::distance(calls.begin(), lock));
}

// A round that loaded nothing caused no device: coldplug looks at the queue once more without
// waiting (a boot whose drivers are all in already pays no quiet period).
TEST_F(ColdplugTest, NoLoadNoQuietPeriod) {
    LoadsAddDevices events(kernel_, {{"virtio_net", kE1000e}});
    ASSERT_TRUE(Coldplug(ctx_, {kUnknown}, &events, Limits(40, 5000)));
    EXPECT_THAT(Loads(), IsEmpty());
    EXPECT_THAT(events.waits, ElementsAre(std::chrono::milliseconds(0)));
    EXPECT_THAT(log_.str(), HasSubstr("rounds=1 settled=yes"));
}

// Without an event source (no uevent socket) coldplug makes one round, as before.
TEST_F(ColdplugTest, WithoutEventsOneRound) {
    Run({kVirtioNet});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
    EXPECT_THAT(log_.str(), HasSubstr("rounds=1 settled=yes"));
}

// The bound: devices keep coming; coldplug stops at the timeout, names what was left (log and
// record), hands it to PID 1's hot-add, and the lockdown stage still locks.
TEST_F(ColdplugTest, SettleBoundIsReportedAndTheLockStillApplies) {
    EndlessDevices events;
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(Coldplug(ctx_, {kVirtioNet}, &events, Limits(50, 30)));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    EXPECT_GT(events.calls, 1);
    ASSERT_EQ(ctx_.coldplug_left.size(), 1u);
    const std::string left = ctx_.coldplug_left[0].syspath;
    EXPECT_EQ(left, "/sys/devices/platform/flood." + std::to_string(events.calls));
    EXPECT_THAT(log_.str(), HasSubstr("coldplug: not settled within 30 ms ("));
    EXPECT_THAT(log_.str(), HasSubstr("1 devices left without their drivers: " + left +
                                      " (platform:flood)"));
    EXPECT_THAT(log_.str(), HasSubstr("settled=no"));
    EXPECT_THAT(Record(), HasSubstr("\"settled\":false"));
    EXPECT_THAT(Record(), HasSubstr("\"timeout_ms\":30"));
    EXPECT_THAT(Record(), HasSubstr("\"left\":[{\"modalias\":\"platform:flood\",\"syspath\":\"" +
                                    left + "\"}]"));
    // kUnknown came back every time: handled once.
    const std::string record = Record();
    size_t seen = 0;
    for (size_t at = record.find(kUnknown.syspath); at != std::string::npos;
         at = record.find(kUnknown.syspath, at + 1)) {
        ++seen;
    }
    EXPECT_EQ(seen, 1u);
    ctx_.policy.lock_after_boot = {true, PolicySource::kHive};
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_TRUE(kernel_.IsLocked());
    EXPECT_TRUE(ctx_.lock.locked);
}

}  // namespace
}  // namespace peinit

namespace peinit {
namespace {

// Issue 24 point 4: the device scan's thread contains what it throws (an exception leaving a
// std::thread would end PID 1): Take reports it as the enumeration's error, so coldplug
// enumerates again itself.
TEST(DeviceScan, ExceptionOnTheThreadIsContained) {
    auto scan = DeviceScan::Start("/nonexistent-sysfs", [](const std::string&)
                                      -> Result<std::vector<DeviceModalias>> {
        throw std::runtime_error("injected");
    });
    ASSERT_NE(scan, nullptr);
    DeviceScan::Found found = scan->Take();
    ASSERT_FALSE(found.devices);
    EXPECT_EQ(found.devices.error().message(), "device scan: unexpected exception: injected");
    // An ordinary enumeration still comes through.
    auto ok = DeviceScan::Start("/nonexistent-sysfs", [](const std::string& sysfs)
                                    -> Result<std::vector<DeviceModalias>> {
        return std::vector<DeviceModalias>{{sysfs + "/devices/x", "platform:x"}};
    });
    ASSERT_NE(ok, nullptr);
    DeviceScan::Found good = ok->Take();
    ASSERT_TRUE(good.devices);
    EXPECT_THAT(*good.devices, ElementsAre(DeviceModalias{"/nonexistent-sysfs/devices/x",
                                                          "platform:x"}));
}

// The enumeration on a sysfs-shaped tree: devices reached through bus/*/devices and class/*
// symlinks, each once by its real path, with the MODALIAS of its uevent file (a CPU has no
// `modalias` attribute, only the uevent line); devices without one are left out.
TEST(EnumerateModaliases, ReadsUeventOfEveryBusAndClassDeviceOnce) {
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/peinit-sysfs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs::path sys = tmpl;
    auto device = [&](const std::string& rel, const std::string& uevent) {
        fs::create_directories(sys / rel);
        std::ofstream(sys / rel / "uevent") << uevent;
    };
    device("devices/pci0000:00/0000:00:02.0", "DRIVER=\nPCI_ID=1AF4:1000\nMODALIAS=pci:v00001AF4d00001000sv\n");
    device("devices/pci0000:00/0000:00:02.0/virtio0", "MODALIAS=virtio:d00000001v00001AF4\n");
    device("devices/system/cpu/cpu0", "MODALIAS=cpu:type:x86,ven0000fam0006mod003F:feature:,0000\n");
    device("devices/virtual/input/input0", "PRODUCT=19/0/1/0\nMODALIAS=input:b0019v0000p0001e0000-e0,1,k74\n");
    device("devices/virtual/tty/ttyS0", "MAJOR=4\nMINOR=64\n");  // no MODALIAS
    for (const auto& [link, target] :
         std::vector<std::pair<std::string, std::string>>{
             {"bus/pci/devices/0000:00:02.0", "../../../devices/pci0000:00/0000:00:02.0"},
             {"bus/virtio/devices/virtio0", "../../../devices/pci0000:00/0000:00:02.0/virtio0"},
             {"bus/cpu/devices/cpu0", "../../../devices/system/cpu/cpu0"},
             {"class/input/input0", "../../devices/virtual/input/input0"},
             {"class/tty/ttyS0", "../../devices/virtual/tty/ttyS0"},
             // The same device seen twice (a class link to a bus device): listed once.
             {"class/virtio-ports/virtio0", "../../devices/pci0000:00/0000:00:02.0/virtio0"}}) {
        fs::create_directories((sys / link).parent_path());
        fs::create_symlink(target, sys / link);
    }
    auto devices = EnumerateModaliases(sys.string());
    ASSERT_TRUE(devices) << devices.error().message();
    std::vector<std::string> aliases;
    for (const auto& d : *devices) aliases.push_back(d.modalias);
    EXPECT_EQ(aliases, (std::vector<std::string>{
                           "pci:v00001AF4d00001000sv", "virtio:d00000001v00001AF4",
                           "cpu:type:x86,ven0000fam0006mod003F:feature:,0000",
                           "input:b0019v0000p0001e0000-e0,1,k74"}));
    EXPECT_EQ((*devices)[1].syspath,
              fs::canonical(sys / "devices/pci0000:00/0000:00:02.0/virtio0").string());
    EXPECT_FALSE(EnumerateModaliases((sys / "nope").string()));
    fs::remove_all(sys);
}

}  // namespace
}  // namespace peinit
