// The module-loading session (peinit/modload/session.h) on its own: demand loads through the
// FakeKernel from the autoload fixture tree and its signed package, each test in a root of its
// own (testing::DemandRoot). What a user relies on: dependencies load first, a failing
// dependency stops its users and is named, a live module is never loaded again, the blacklist
// is never loaded, and the costly steps (libkmod context, packages) happen once per session.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "peinit/core/cmdline.h"
#include "peinit/core/hive.h"
#include "peinit/modload/session.h"
#include "tests/fakes/fake_kernel.h"
#include "tests/unit/demand_root.h"

namespace peinit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Status = ModuleOutcome::Status;

class ModloadSessionTest : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_NO_FATAL_FAILURE(root_.Make()); }

    // A session on the fixture root with the policy the command line `cmdline` gives.
    ModloadSession& Open(const std::string& cmdline = "console=ttyS0") {
        Cmdline c = ParseCmdline(cmdline);
        session_ = std::make_unique<ModloadSession>(kernel_, root_.Paths(), testing::kFixtureKver,
                                                    ComputeEffectivePolicy(Hive{}, c), c);
        return *session_;
    }
    DemandLoadReport Demand(const std::string& alias) {
        return session_->Demand(alias, RequestOrigin::Demand(alias));
    }
    std::vector<std::string> Loads() const { return kernel_.CallNames(KernelOp::kInitModule); }
    static const ModuleOutcome* Find(const DemandLoadReport& r, const std::string& module) {
        for (const auto& o : r.outcomes) {
            if (o.module == module) return &o;
        }
        return nullptr;
    }

    testing::DemandRoot root_;
    FakeKernel kernel_;
    std::unique_ptr<ModloadSession> session_;
};

// An alias resolves like modprobe and its module loads after its dependency, both from the
// verified package, each outcome naming who asked.
TEST_F(ModloadSessionTest, DependenciesLoadFirstFromTheVerifiedPackage) {
    Open();
    DemandLoadReport r = Demand("algif-hash");
    EXPECT_TRUE(r.Succeeded()) << r.error;
    EXPECT_THAT(r.resolved, ElementsAre("algif_hash"));
    EXPECT_THAT(Loads(), ElementsAre("af_alg", "algif_hash"));
    for (const char* m : {"af_alg", "algif_hash"}) {
        const ModuleOutcome* o = Find(r, m);
        ASSERT_NE(o, nullptr) << m;
        EXPECT_EQ(o->status, Status::kLoaded) << m;
        EXPECT_EQ(o->package, "all.pkg") << m;
        EXPECT_THAT(o->origins, ElementsAre(RequestOrigin::Demand("algif-hash"))) << m;
    }
}

// A dependency the kernel refuses stops the module that needs it: that one is skipped, naming
// the dependency and the errno, and is never handed to the kernel.
TEST_F(ModloadSessionTest, FailingDependencyStopsItsUserAndIsNamed) {
    kernel_.SetModuleError("af_alg", EKEYREJECTED);
    Open();
    DemandLoadReport r = Demand("algif-hash");
    EXPECT_FALSE(r.Succeeded());
    const ModuleOutcome* dep = Find(r, "af_alg");
    ASSERT_NE(dep, nullptr);
    EXPECT_EQ(dep->status, Status::kFailed);
    EXPECT_EQ(dep->error, EKEYREJECTED);
    const ModuleOutcome* user = Find(r, "algif_hash");
    ASSERT_NE(user, nullptr);
    EXPECT_EQ(user->status, Status::kSkipped);
    EXPECT_THAT(user->reason, HasSubstr("dependency af_alg failed (EKEYREJECTED)"));
    EXPECT_THAT(Loads(), ElementsAre("af_alg"));
}

// A module the kernel already has is not loaded again, whether asked for or a dependency; a
// second demand for what the first one loaded loads nothing.
TEST_F(ModloadSessionTest, LiveModulesAreNeverLoadedAgain) {
    kernel_.SetLoaded("af_packet");
    kernel_.SetLoaded("af_alg");
    ModloadSession& s = Open();
    DemandLoadReport live = Demand("net-pf-17");
    EXPECT_TRUE(live.Succeeded());
    EXPECT_THAT(live.already_live, ElementsAre("af_packet"));
    EXPECT_THAT(live.outcomes, IsEmpty());
    DemandLoadReport user = Demand("algif-hash");
    EXPECT_TRUE(user.Succeeded());
    EXPECT_EQ(Find(user, "af_alg"), nullptr);
    EXPECT_THAT(Loads(), ElementsAre("algif_hash"));
    DemandLoadReport again = Demand("algif-hash");
    EXPECT_TRUE(again.Succeeded());
    EXPECT_THAT(again.already_live, ElementsAre("algif_hash"));
    EXPECT_THAT(Loads(), ElementsAre("algif_hash"));
    EXPECT_EQ(s.counters().load_calls, 1);
}

// The blacklist (the command line's here, modprobe.d's below) refuses the module, naming the
// source, and nothing is loaded; the other modules still load.
TEST_F(ModloadSessionTest, BlacklistedModulesAreRefusedAndNeverLoaded) {
    Open("console=ttyS0 modprobe.blacklist=af_packet");
    DemandLoadReport r = Demand("net-pf-17");
    EXPECT_FALSE(r.Succeeded());
    ASSERT_EQ(r.refused.size(), 1u);
    EXPECT_EQ(r.refused[0].module, "af_packet");
    ASSERT_NE(Find(r, "af_packet"), nullptr);
    EXPECT_EQ(Find(r, "af_packet")->status, Status::kBlacklisted);
    DemandLoadReport bad = Demand("pci:v0000DEADd00001234sv00000000sd00000000bc02sc00i00");
    ASSERT_EQ(bad.refused.size(), 1u);
    EXPECT_EQ(bad.refused[0].module, "bad_drv");
    EXPECT_THAT(bad.refused[0].reason, HasSubstr("blacklist bad_drv"));
    EXPECT_THAT(Loads(), IsEmpty());
    EXPECT_TRUE(Demand("net-pf-38").Succeeded());
    EXPECT_THAT(Loads(), ElementsAre("af_alg"));
}

// One libkmod context and one read of the packages per session, however many demands.
TEST_F(ModloadSessionTest, CostlyStepsHappenOncePerSession) {
    ModloadSession& s = Open();
    EXPECT_TRUE(Demand("net-pf-17").Succeeded());
    EXPECT_TRUE(Demand("algif-hash").Succeeded());
    EXPECT_TRUE(Demand("dual-alias").Succeeded());
    EXPECT_EQ(s.counters().db_opens, 1);
    EXPECT_EQ(s.counters().package_set_loads, 1);
    EXPECT_EQ(s.counters().load_calls, 5);
    EXPECT_THAT(Loads(), ElementsAre("af_packet", "af_alg", "algif_hash", "dual_a", "dual_b"));
}

// Once loads are refused (SigningPolicy=enforce not in effect), nothing is handed to the kernel,
// with the reason; a module the kernel already has still counts.
TEST_F(ModloadSessionTest, RefusedLoadsLoadNothingButLiveModulesCount) {
    kernel_.SetLoaded("af_packet");
    ModloadSession& s = Open();
    s.RefuseLoads("module.sig_enforce is not on");
    DemandLoadReport r = Demand("net-pf-38");
    EXPECT_FALSE(r.Succeeded());
    ASSERT_NE(Find(r, "af_alg"), nullptr);
    EXPECT_EQ(Find(r, "af_alg")->status, Status::kFailed);
    EXPECT_THAT(Find(r, "af_alg")->reason, HasSubstr("module.sig_enforce is not on"));
    EXPECT_TRUE(Demand("net-pf-17").Succeeded());
    EXPECT_THAT(Loads(), IsEmpty());
}

// An alias nothing provides resolves to nothing: no error, nothing loaded, not a success.
TEST_F(ModloadSessionTest, UnknownAliasResolvesToNothing) {
    Open();
    DemandLoadReport r = Demand("net-pf-99999");
    EXPECT_THAT(r.resolved, IsEmpty());
    EXPECT_TRUE(r.error.empty()) << r.error;
    EXPECT_FALSE(r.Succeeded());
    EXPECT_THAT(Loads(), IsEmpty());
}

}  // namespace
}  // namespace peinit
