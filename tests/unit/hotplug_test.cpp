// Hot-add while peinit stays PID 1 (issue 15 point 11, R-29): kernel uevents parsed and filtered
// (peinit/sys/uevent.h), and the devices they add handled under the boot's policy until the
// lock (peinit/init/hotplug.h), on the synthetic tree tests/fixtures/roots/autoload with
// FakeKernel. The QEMU boot test (tests/boot/hotplug_boot_test.cpp) adds real devices through
// the QEMU monitor.

#include "peinit/init/hotplug.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/module_lockdown.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/fakes/fake_kernel.h"
#include "peinit/sys/uevent.h"
#include "tests/unit/captured_log.h"
#include "tests/unit/demand_root.h"

namespace peinit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using namespace std::string_literals;
namespace fs = std::filesystem;

// --- uevents -----------------------------------------------------------------------------------

std::string Datagram(const std::string& action, const std::string& devpath,
                     const std::string& modalias, uint64_t seqnum) {
    std::string d = action + "@" + devpath + '\0' + "ACTION=" + action + '\0' +
                    "DEVPATH=" + devpath + '\0' + "SUBSYSTEM=pci" + '\0';
    if (!modalias.empty()) d += "MODALIAS=" + modalias + '\0';
    d += "SEQNUM=" + std::to_string(seqnum) + '\0';
    return d;
}

TEST(Uevent, ParsesTheKernelsDatagram) {
    auto e = ParseUevent(Datagram("add", "/devices/pci0000:00/0000:01:00.0",
                                  "pci:v00001AF4d00001044sv00001AF4sd00001100bc00scFFi00", 1234));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->action, "add");
    EXPECT_EQ(e->devpath, "/devices/pci0000:00/0000:01:00.0");
    EXPECT_EQ(e->subsystem, "pci");
    EXPECT_EQ(e->modalias, "pci:v00001AF4d00001044sv00001AF4sd00001100bc00scFFi00");
    EXPECT_EQ(e->seqnum, 1234u);
}

TEST(Uevent, RefusesWhatTheKernelDidNotWrite) {
    // udevd's re-broadcast starts with "libudev", not ACTION@DEVPATH.
    EXPECT_FALSE(ParseUevent("libudev\0\xfe\xed\xca\xfe"s));
    // Header and pairs disagree.
    std::string d = Datagram("add", "/devices/a", "pci:x", 5);
    d.replace(0, 3, "bind");
    EXPECT_FALSE(ParseUevent(d));
    // No SEQNUM, or a SEQNUM that is not a number.
    EXPECT_FALSE(ParseUevent("add@/devices/a\0ACTION=add\0DEVPATH=/devices/a\0"s));
    EXPECT_FALSE(ParseUevent("add@/devices/a\0ACTION=add\0DEVPATH=/devices/a\0SEQNUM=1x\0"s));
    EXPECT_FALSE(ParseUevent("no header at all"));
    EXPECT_FALSE(ParseUevent(""));
}

TEST(Uevent, HotAddedDevicesAreNewAddsWithAModaliasEachOnce) {
    std::vector<Uevent> events;
    for (const auto& d : {Datagram("add", "/devices/old", "pci:old", 10),      // coldplug saw it
                          Datagram("add", "/devices/new", "pci:new", 11),
                          Datagram("bind", "/devices/new", "pci:new", 12),     // not an add
                          Datagram("add", "/devices/virtual/block/loop0", "", 13),  // no alias
                          Datagram("add", "/devices/new", "pci:new", 14),      // again
                          Datagram("add", "/devices/new/virtio1", "virtio:d00000004v00001AF4",
                                   15)}) {
        auto e = ParseUevent(d);
        ASSERT_TRUE(e);
        events.push_back(*e);
    }
    EXPECT_THAT(HotAddedDevices(events, 10),
                ElementsAre(DeviceModalias{"/sys/devices/new", "pci:new"},
                            DeviceModalias{"/sys/devices/new/virtio1",
                                           "virtio:d00000004v00001AF4"}));
    // Coldplug did not run: every add counts.
    EXPECT_EQ(HotAddedDevices(events, 0).size(), 3u);
}

// Coldplug's enumeration made ahead, completed by the events since: a device of an event at or
// before the scan's count was enumerated (not added twice), a later one is added once, a
// device both enumerated and announced later is listed once, and the result is sorted.
TEST(Uevent, DevicesSinceAScanAreTheScanAndLaterAddsEachOnce) {
    std::vector<Uevent> events;
    for (const auto& d : {Datagram("add", "/devices/b", "pci:b", 20),        // before the scan
                          Datagram("add", "/devices/c/virtio3", "virtio:c", 21),
                          Datagram("add", "/devices/a", "pci:a", 22),         // scanned as well
                          Datagram("add", "/devices/c/virtio3", "virtio:c", 23),
                          Datagram("add", "/devices/virtual/block/loop1", "", 24)}) {
        auto e = ParseUevent(d);
        ASSERT_TRUE(e);
        events.push_back(*e);
    }
    std::vector<DeviceModalias> scanned = {{"/sys/devices/b", "pci:b"},
                                           {"/sys/devices/a", "pci:a"}};
    EXPECT_THAT(DevicesSince(scanned, events, 20),
                ElementsAre(DeviceModalias{"/sys/devices/a", "pci:a"},
                            DeviceModalias{"/sys/devices/b", "pci:b"},
                            DeviceModalias{"/sys/devices/c/virtio3", "virtio:c"}));
    EXPECT_THAT(DevicesSince({}, {}, 20), ::testing::IsEmpty());
}

// The scan ahead runs on a thread of its own and reports the count read before it, the devices
// and how long it took; an unreadable sysfs is its error, for coldplug to enumerate again.
TEST(Uevent, DeviceScanEnumeratesAheadWithTheCountBeforeIt) {
    testing::DemandRoot root;
    ASSERT_NO_FATAL_FAILURE(root.Make({"af_packet"}));
    const std::filesystem::path sys = root.root() / "sys";
    std::filesystem::create_directories(sys / "kernel");
    std::ofstream(sys / "kernel/uevent_seqnum") << "77\n";
    std::filesystem::create_directories(sys / "devices/pci0000:00/0000:00:03.0");
    std::ofstream(sys / "devices/pci0000:00/0000:00:03.0/uevent") << "MODALIAS=pci:v1d2\n";
    std::filesystem::create_directories(sys / "bus/pci/devices");
    std::filesystem::create_symlink("../../../devices/pci0000:00/0000:00:03.0",
                                    sys / "bus/pci/devices/0000:00:03.0");
    auto scan = DeviceScan::Start(sys.string());
    ASSERT_NE(scan, nullptr);
    DeviceScan::Found found = scan->Take();
    ASSERT_TRUE(found.seqnum) << found.seqnum.error().message();
    EXPECT_EQ(*found.seqnum, 77u);
    ASSERT_TRUE(found.devices) << found.devices.error().message();
    ASSERT_EQ(found.devices->size(), 1u);
    EXPECT_EQ((*found.devices)[0].modalias, "pci:v1d2");

    auto missing = DeviceScan::Start((root.root() / "nosys").string());
    ASSERT_NE(missing, nullptr);
    DeviceScan::Found none = missing->Take();
    EXPECT_FALSE(none.seqnum);
    EXPECT_FALSE(none.devices);
}

TEST(Uevent, SeqnumIsReadFromSysfs) {
    testing::DemandRoot root;
    ASSERT_NO_FATAL_FAILURE(root.Make({"af_packet"}));
    std::filesystem::create_directories(root.root() / "sys/kernel");
    std::ofstream(root.root() / "sys/kernel/uevent_seqnum") << "4711\n";
    auto n = ReadUeventSeqnum((root.root() / "sys").string());
    ASSERT_TRUE(n) << n.error().message();
    EXPECT_EQ(*n, 4711u);
    std::ofstream(root.root() / "sys/kernel/uevent_seqnum") << "x\n";
    EXPECT_FALSE(ReadUeventSeqnum((root.root() / "sys").string()));
}

// --- hot-add under the policy --------------------------------------------------------------------

const DeviceModalias kVirtioNet{"/sys/devices/pci0000:00/0000:01:00.0/virtio3",
                                "virtio:d00000001v00001AF4"};
const DeviceModalias kE1000e{"/sys/devices/pci0000:00/0000:02:00.0",
                             "pci:v00008086d000010D3sv00008086sd0000A01Fbc02sc00i00"};
const DeviceModalias kUnknown{"/sys/devices/platform/serial8250", "platform:serial8250"};

class HotplugTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(root_.Make());
        ctx_.paths = root_.Paths();
        ctx_.kernel_release = testing::kFixtureKver;
        // The autoload stage's sealed tree (peinit/core/sealed_tree.h) has the same layout.
        ctx_.sealed_root = root_.root();
    }

    std::vector<std::string> Loads() const { return kernel_.CallNames(KernelOp::kInitModule); }
    std::string Record() const {
        std::string r = testing::ReadFileOrEmpty(root_.root() / "run/peinit/hotplug.json");
        r.erase(std::remove_if(r.begin(), r.end(), [](char c) { return std::isspace(c); }),
                r.end());
        return r;
    }
    const HotplugDevice& Device(const Hotplug& h, size_t i) const { return h.devices().at(i); }

    testing::DemandRoot root_;
    FakeKernel kernel_;
    BootContext ctx_{kernel_};
    testing::CapturedLog log_{"hotplug-test"};
};

// Issue 24 point 1: hot-add resolves and loads from the sealed tree only, never from the root
// file system a root service may have written, and keeps the trust store it read for later
// sessions; without a tree it attempts nothing.
TEST_F(HotplugTest, ReadsOnlyTheSealedTreeAndKeepsTheTrustStore) {
    const fs::path writable = root_.root() / "writable-root";  // has no tree, keys or packages
    fs::create_directories(writable / "run/peinit");
    ctx_.paths.root = writable;
    Hotplug hotplug(ctx_);
    hotplug.Handle({kVirtioNet});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
    ASSERT_NE(ctx_.trust, nullptr);
    hotplug.Idle();
    // The keys are not read again: the next session checks packages against the kept store.
    fs::remove_all(root_.root() / "etc/peinit/keys");
    ASSERT_TRUE(kernel_.DeleteModule("virtio_net", 0));
    hotplug.Handle({kVirtioNet});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net", "virtio_net"));
    EXPECT_EQ(hotplug.sessions_opened(), 2);
}

TEST_F(HotplugTest, WithoutTheSealedTreeNothingIsAttempted) {
    ctx_.sealed_root.clear();
    Hotplug hotplug(ctx_);
    hotplug.Handle({kVirtioNet});
    EXPECT_THAT(Loads(), IsEmpty());
    ASSERT_EQ(hotplug.devices().size(), 1u);
    EXPECT_EQ(Device(hotplug, 0).result, "failed");
    EXPECT_THAT(Device(hotplug, 0).detail, HasSubstr("/run/peinit/ro was not built"));
    EXPECT_EQ(hotplug.sessions_opened(), 0);
}

TEST_F(HotplugTest, EnabledLoadsTheDriverWithItsDependencies) {
    Hotplug hotplug(ctx_);
    hotplug.Handle({kVirtioNet, kUnknown});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
    ASSERT_EQ(hotplug.devices().size(), 2u);
    EXPECT_EQ(Device(hotplug, 0).result, "loaded");
    EXPECT_THAT(Device(hotplug, 0).modules, ElementsAre("virtio_net"));
    EXPECT_EQ(Device(hotplug, 1).result, "no-driver");
    ASSERT_EQ(hotplug.outcomes().size(), 3u);
    EXPECT_THAT(hotplug.outcomes().back().requested_by,
                ElementsAre("hotplug " + kVirtioNet.syspath));
    EXPECT_EQ(hotplug.outcomes().back().package, "all.pkg");
    EXPECT_THAT(log_.str(), HasSubstr("hotplug: loaded virtio_net for " + kVirtioNet.syspath));
    EXPECT_THAT(log_.str(),
                HasSubstr("hotplug done devices=2 loaded=3 refused=0 failed=0 locked=0"));
    EXPECT_THAT(Record(), HasSubstr("\"syspath\":\"" + kVirtioNet.syspath + "\""));
    EXPECT_THAT(Record(), HasSubstr("\"result\":\"loaded\""));
    EXPECT_THAT(Record(), HasSubstr("\"requested_by\":[\"hotplug" + kVirtioNet.syspath + "\"]"));
    // The device again (a second event for it): its driver is live, nothing is loaded twice.
    hotplug.Handle({kVirtioNet});
    EXPECT_EQ(Loads().size(), 3u);
    EXPECT_EQ(Device(hotplug, 2).result, "present");
}

TEST_F(HotplugTest, AllowListAndBlacklistApplyAsForColdplug) {
    ctx_.policy.autoload = {AutoLoadPolicy::kAllowList, PolicySource::kHive};
    ctx_.policy.autoload_allowed = {"virtio_net", "e1000e"};
    ctx_.policy.blacklist = {{"e1000e", PolicySource::kHive}};
    Hotplug hotplug(ctx_);
    hotplug.Handle({kE1000e, kVirtioNet});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
    EXPECT_EQ(Device(hotplug, 0).result, "refused");
    EXPECT_THAT(Device(hotplug, 0).detail, HasSubstr("e1000e: blacklisted"));
    EXPECT_EQ(Device(hotplug, 1).result, "loaded");
    // Not on the allow-list: refused, nothing loaded.
    ctx_.policy.blacklist.clear();
    ctx_.policy.autoload_allowed = {"virtio_net"};
    Hotplug second(ctx_);
    second.Handle({kE1000e});
    EXPECT_EQ(Loads().size(), 3u);
    EXPECT_EQ(Device(second, 0).result, "refused");
    EXPECT_EQ(Device(second, 0).detail, "e1000e: not in AutoLoadAllowed");
    EXPECT_THAT(log_.str(), HasSubstr("hotplug: refused e1000e for " + kE1000e.syspath +
                                      " (alias " + kE1000e.modalias +
                                      "): not in AutoLoadAllowed"));
}

TEST_F(HotplugTest, DisabledAttemptsNothing) {
    ctx_.policy.autoload = {AutoLoadPolicy::kDisabled, PolicySource::kHive};
    Hotplug hotplug(ctx_);
    hotplug.Handle({kVirtioNet, kE1000e});
    EXPECT_THAT(Loads(), IsEmpty());
    EXPECT_EQ(hotplug.sessions_opened(), 0);  // not even resolved
    EXPECT_EQ(Device(hotplug, 0).result, "disabled");
    EXPECT_EQ(Device(hotplug, 1).result, "disabled");
    EXPECT_THAT(log_.str(), HasSubstr("refused=2"));
}

// "Until the lock": what was added before the lock got its driver; after a runtime lock
// (peinitctl lock) nothing is attempted, not even a resolution.
TEST_F(HotplugTest, AfterTheLockNothingIsAttempted) {
    Hotplug hotplug(ctx_);
    hotplug.Handle({kVirtioNet});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
    hotplug.Idle();
    ASSERT_TRUE(kernel_.ModuleLockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME));
    hotplug.Handle({kE1000e});
    EXPECT_EQ(Loads().size(), 3u);
    EXPECT_EQ(hotplug.sessions_opened(), 1);
    EXPECT_FALSE(hotplug.session_open());
    EXPECT_EQ(Device(hotplug, 1).result, "locked");
    EXPECT_EQ(Device(hotplug, 1).detail, "module loading is locked: nothing attempted");
    EXPECT_THAT(log_.str(), HasSubstr("hotplug done devices=1 loaded=0 refused=0 failed=0 "
                                      "locked=1"));
    EXPECT_THAT(Record(), HasSubstr("\"result\":\"locked\""));
}

// An unpatched kernel's lock is kernel.modules_disabled (R-18); a lock state that cannot be
// read counts as locked (fail closed).
TEST_F(HotplugTest, FallbackLockAndUnknownLockStateAttemptNothing) {
    kernel_.SetUnpatched(true);
    Hotplug hotplug(ctx_);
    kernel_.SetSysctl("kernel/modules_disabled", "1");
    hotplug.Handle({kVirtioNet});
    EXPECT_THAT(Loads(), IsEmpty());
    EXPECT_EQ(Device(hotplug, 0).result, "locked");

    kernel_.SetSysctl("kernel/modules_disabled", "0");
    kernel_.SetOpError(KernelOp::kReadSysctl, "kernel/modules_disabled", EACCES);
    hotplug.Handle({kVirtioNet});
    EXPECT_THAT(Loads(), IsEmpty());
    EXPECT_EQ(Device(hotplug, 1).result, "locked");
    EXPECT_THAT(Device(hotplug, 1).detail, HasSubstr("lock state unknown"));
    EXPECT_EQ(hotplug.sessions_opened(), 0);
}

TEST_F(HotplugTest, UnpatchedKernelNotLockedStillLoads) {
    kernel_.SetUnpatched(true);
    Hotplug hotplug(ctx_);
    hotplug.Handle({kVirtioNet});
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
}

// One session per burst: opened on the first device that needs it (or taken over from the
// boot), kept across batches, closed by Idle().
TEST_F(HotplugTest, SessionIsKeptUntilIdle) {
    Hotplug hotplug(ctx_);
    hotplug.Handle({kVirtioNet});
    hotplug.Handle({kE1000e});
    EXPECT_EQ(hotplug.sessions_opened(), 1);
    EXPECT_TRUE(hotplug.session_open());
    hotplug.Idle();
    EXPECT_FALSE(hotplug.session_open());
    kernel_.SetModuleError("e1000e", ENOEXEC);  // nothing left to load for it anyway
    hotplug.Handle({kE1000e});
    EXPECT_EQ(hotplug.sessions_opened(), 2);
    EXPECT_EQ(Device(hotplug, 2).result, "present");
}

TEST_F(HotplugTest, AFailedLoadIsRecordedWithItsReason) {
    kernel_.SetModuleError("e1000e", ENOEXEC);
    Hotplug hotplug(ctx_);
    hotplug.Handle({kE1000e});
    EXPECT_EQ(Device(hotplug, 0).result, "failed");
    EXPECT_THAT(Device(hotplug, 0).detail, HasSubstr("e1000e failed"));
    EXPECT_THAT(log_.str(), HasSubstr("failed=1"));
}

}  // namespace
}  // namespace peinit
