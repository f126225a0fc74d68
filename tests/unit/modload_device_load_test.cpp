// Per-device demand loading (peinit/modload/device_load.h), the one path coldplug and hot-add
// share: each driver is attempted once per batch whichever device wants it first, a driver
// already live is left alone, the blacklist refuses, a failure names the module. Each test has
// its own fixture root (testing::DemandRoot).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <set>
#include <string>
#include <vector>

#include "peinit/core/cmdline.h"
#include "peinit/core/hive.h"
#include "peinit/modload/device_load.h"
#include "peinit/modload/session.h"
#include "tests/fakes/fake_kernel.h"
#include "tests/unit/captured_log.h"
#include "tests/unit/demand_root.h"

namespace peinit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using testing::kBad;
using testing::kUnknown;
using testing::kVirtioNet;
using testing::kVirtioNet2;

class ModloadDeviceLoadTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_NO_FATAL_FAILURE(root_.Make());
        Cmdline c = ParseCmdline("console=ttyS0");
        session_ = std::make_unique<ModloadSession>(kernel_, root_.Paths(), testing::kFixtureKver,
                                                    ComputeEffectivePolicy(Hive{}, c), c);
    }
    DeviceLoad Load(const DeviceModalias& dev) {
        return LoadDeviceDrivers(*session_, dev, RequestOrigin::Coldplug(dev.syspath), attempted_,
                                 "coldplug");
    }
    std::vector<std::string> Loads() const { return kernel_.CallNames(KernelOp::kInitModule); }

    testing::DemandRoot root_;
    FakeKernel kernel_;
    std::unique_ptr<ModloadSession> session_;
    std::set<std::string> attempted_;
    testing::CapturedLog log_{"device-load-test"};
};

// Two devices of one driver in a batch: the first loads it (dependencies first), the second
// finds it present; nothing is handed to the kernel twice.
TEST_F(ModloadDeviceLoadTest, ADriverIsLoadedOncePerBatch) {
    DeviceLoad first = Load(kVirtioNet);
    EXPECT_EQ(first.result, "loaded") << first.detail;
    EXPECT_THAT(first.modules, ElementsAre("virtio_net"));
    EXPECT_EQ(first.loaded, 3);
    DeviceLoad second = Load(kVirtioNet2);
    EXPECT_EQ(second.result, "present");
    EXPECT_THAT(second.outcomes, IsEmpty());
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover", "virtio_net"));
    EXPECT_THAT(log_.str(), HasSubstr("coldplug: loaded virtio_net for " + kVirtioNet.syspath +
                                      " from all.pkg"));
}

// A driver the kernel already has (loaded before this batch) is left alone.
TEST_F(ModloadDeviceLoadTest, ALiveDriverIsNotLoadedAgain) {
    kernel_.SetLoaded("virtio_net");
    DeviceLoad r = Load(kVirtioNet);
    EXPECT_EQ(r.result, "present");
    EXPECT_THAT(Loads(), IsEmpty());
}

// A blacklisted driver is refused with its reason and never loaded; a device no module matches
// has no driver, which is not a failure.
TEST_F(ModloadDeviceLoadTest, BlacklistedDriverIsRefusedAndUnknownHasNone) {
    DeviceLoad bad = Load(kBad);
    EXPECT_EQ(bad.result, "refused");
    EXPECT_EQ(bad.refused, 1);
    EXPECT_THAT(bad.detail, HasSubstr("bad_drv: "));
    EXPECT_THAT(bad.detail, HasSubstr("blacklist bad_drv"));
    DeviceLoad none = Load(kUnknown);
    EXPECT_EQ(none.result, "no-driver");
    EXPECT_EQ(none.failed, 0);
    EXPECT_THAT(Loads(), IsEmpty());
}

// A load the kernel refuses fails the device, naming the module and the status; the module is
// not retried for the next device of the batch.
TEST_F(ModloadDeviceLoadTest, FailedLoadNamesTheModuleAndIsNotRetried) {
    kernel_.SetModuleError("net_failover", ENOMEM);
    DeviceLoad r = Load(kVirtioNet);
    EXPECT_EQ(r.result, "failed");
    EXPECT_THAT(r.detail, HasSubstr("net_failover failed"));
    EXPECT_GE(r.failed, 1);
    DeviceLoad again = Load(kVirtioNet2);
    EXPECT_EQ(again.result, "present");
    EXPECT_THAT(Loads(), ElementsAre("failover", "net_failover"));
}

}  // namespace
}  // namespace peinit
