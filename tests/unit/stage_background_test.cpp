// The stage table's concurrency (stages/stage.h): background work is started, opened and joined
// where BootBackground says, RunStages joins what the joining stage left, and a piece that
// fails or throws is reported without stopping the boot.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "stages/stage.h"
#include "tests/fakes/fake_kernel.h"
#include "tests/unit/captured_log.h"

namespace peinit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// What happened, in order: "stage NAME", "join WORK", "open WORK".
std::vector<std::string> g_events;

// A piece of work that only records when it is opened and joined, and ends as told.
struct FakeWork {
    std::string name;
    enum class End { kOk, kFails, kThrows } end = End::kOk;
    bool opened = false;
};

void StartFake(BootContext& ctx, const std::string& name, FakeWork::End end = FakeWork::End::kOk) {
    auto work = std::make_shared<FakeWork>(FakeWork{name, end});
    ctx.background.Start<FakeWork>(
        name, work,
        [](FakeWork& w) -> Result<void> {
            g_events.push_back("join " + w.name);
            if (w.end == FakeWork::End::kThrows) throw std::runtime_error("injected");
            if (w.end == FakeWork::End::kFails) return Err("the disk went away");
            return Ok();
        },
        [](FakeWork& w) {
            w.opened = true;
            g_events.push_back("open " + w.name);
        });
}

Result<void> StartsTwo(BootContext& ctx) {
    g_events.push_back("stage starts");
    StartFake(ctx, "scan");
    StartFake(ctx, "root");
    return Ok();
}
Result<void> Middle(BootContext&) {
    g_events.push_back("stage middle");
    return Ok();
}
// Takes "scan" itself, as coldplug takes the device scan: RunStages does not join it again.
Result<void> TakesScan(BootContext& ctx) {
    g_events.push_back("stage takes-scan");
    auto scan = ctx.background.Take<FakeWork>("scan");
    g_events.push_back(scan ? "took scan" : "no scan");
    return Ok();
}
Result<void> Last(BootContext& ctx) {
    g_events.push_back("stage last");
    g_events.push_back(ctx.background.Pending().empty() ? "nothing pending" : "work pending");
    return Ok();
}
Result<void> FatalFailure(BootContext&) {
    g_events.push_back("stage fails");
    return Err("no root");
}

constexpr BackgroundSpec kTable[] = {
    {"scan", "starts", "", "takes-scan", "sysfs"},
    {"root", "starts", "middle", "middle", "block devices"},
};

using RunFn = Result<void> (*)(BootContext&);

// starts (`first`), middle, takes-scan (`third`) and last: the stages most tests run.
std::array<Stage, 4> FourStages(RunFn first, RunFn third) {
    return {{{"starts", Criticality::kFatal, first},
             {"middle", Criticality::kDegrade, Middle},
             {"takes-scan", Criticality::kDegrade, third},
             {"last", Criticality::kFatal, Last}}};
}

class StageBackground : public ::testing::Test {
  protected:
    void SetUp() override { g_events.clear(); }
    FakeKernel kernel_;
    BootContext ctx_{kernel_};
};

// The boot's own tables agree with each other.
TEST_F(StageBackground, BootTableIsConsistent) {
    auto checked = CheckBackground(BootStages(), BootBackground());
    EXPECT_TRUE(checked) << checked.error().message();
    std::vector<std::string> names;
    for (const BackgroundSpec& b : BootBackground()) {
        names.push_back(std::string(b.name));
        EXPECT_FALSE(b.touches.empty()) << b.name;
    }
    EXPECT_THAT(names, ElementsAre(kPackagePrefetch, kRootPreparation, kDeviceScan));
}

// A table that joins work before it is started, or names a stage that is not there, is refused
// and no stage runs.
TEST_F(StageBackground, InconsistentTableIsRefusedBeforeAnyStage) {
    const Stage stages[] = {
        {"starts", Criticality::kFatal, StartsTwo},
        {"middle", Criticality::kFatal, Middle},
    };
    constexpr BackgroundSpec kBackwards[] = {{"scan", "middle", "", "starts", ""}};
    auto run = RunStages(stages, ctx_, kBackwards);
    ASSERT_FALSE(run);
    EXPECT_THAT(run.error().message(), HasSubstr("background scan: joined by starts"));
    EXPECT_THAT(g_events, IsEmpty());
    constexpr BackgroundSpec kUnknown[] = {{"scan", "starts", "", "coldplug", ""}};
    EXPECT_FALSE(CheckBackground(stages, kUnknown));
    constexpr BackgroundSpec kLateGate[] = {{"root", kBeforeStages, "middle", "starts", ""}};
    EXPECT_FALSE(CheckBackground(stages, kLateGate));
}

// Each piece is opened and joined right after the stage the table names, not at the end; what
// the joining stage takes itself is not joined again; nothing is left for the last stage.
TEST_F(StageBackground, WorkIsOpenedAndJoinedAtTheNamedStages) {
    const auto stages = FourStages(StartsTwo, TakesScan);
    ASSERT_TRUE(RunStages(stages, ctx_, kTable));
    EXPECT_THAT(g_events,
                ElementsAre("stage starts", "stage middle", "open root", "join root",
                            "stage takes-scan", "took scan", "stage last", "nothing pending"));
    ASSERT_EQ(ctx_.background.joined().size(), 1u);
    EXPECT_EQ(ctx_.background.joined()[0].name, "root");
    EXPECT_EQ(ctx_.background.joined()[0].at, "middle");
    EXPECT_FALSE(ctx_.background.joined()[0].error);
}

// The joining stage may leave without taking it (it returned early): RunStages joins it right
// after that stage. Work PID 1 started before the first stage is held to the table too.
TEST_F(StageBackground, WorkTheJoiningStageLeftIsJoinedAfterIt) {
    StartFake(ctx_, "prefetch");
    const auto stages = FourStages(StartsTwo, Middle);
    constexpr BackgroundSpec kWithPrefetch[] = {
        {"prefetch", kBeforeStages, "", "starts", "packages"},
        {"scan", "starts", "", "takes-scan", "sysfs"},
        {"root", "starts", "middle", "last", "block devices"},
    };
    ASSERT_TRUE(RunStages(stages, ctx_, kWithPrefetch));
    EXPECT_THAT(g_events, ElementsAre("stage starts", "join prefetch", "stage middle", "open root",
                                      "stage middle", "join scan", "stage last", "work pending",
                                      "join root"));
    std::vector<std::string> at;
    for (const auto& j : ctx_.background.joined()) at.push_back(j.name + "@" + j.at);
    EXPECT_THAT(at, ElementsAre("prefetch@starts", "scan@takes-scan", "root@last"));
    EXPECT_THAT(ctx_.background.Pending(), IsEmpty());
}

// A piece that fails or throws is reported as an error naming it, and the boot goes on; work in
// no table does not outlive the stage that started it.
TEST_F(StageBackground, FailingAndThrowingWorkIsReportedAndTheBootGoesOn) {
    testing::CapturedLog log("stage-background-test");
    struct Starts {
        static Result<void> Run(BootContext& c) {
            g_events.push_back("stage starts");
            StartFake(c, "scan", FakeWork::End::kFails);
            StartFake(c, "root", FakeWork::End::kThrows);
            StartFake(c, "stray");
            return Ok();
        }
    };
    const auto stages = FourStages(Starts::Run, Middle);
    ASSERT_TRUE(RunStages(stages, ctx_, kTable));
    EXPECT_THAT(g_events,
                ElementsAre("stage starts", "join stray", "stage middle", "open root", "join root",
                            "stage middle", "join scan", "stage last", "nothing pending"));
    const std::string text = log.str();
    EXPECT_THAT(text, HasSubstr("background stray is running after stage starts and is in no "
                                "table"));
    EXPECT_THAT(text, HasSubstr("background scan failed: the disk went away, ignoring"));
    EXPECT_THAT(text,
                HasSubstr("background root failed: unexpected exception: injected, ignoring"));
    ASSERT_EQ(ctx_.background.joined().size(), 3u);
    EXPECT_FALSE(ctx_.background.joined()[0].error);
    ASSERT_TRUE(ctx_.background.joined()[1].error);
    ASSERT_TRUE(ctx_.background.joined()[2].error);
    EXPECT_EQ(ctx_.background.joined()[2].error->message(), "the disk went away");
}

// A fatal stage's failure returns at once: its emergency path must not wait on work that may
// never end (a root that never appears); the work stays pending for its owner's destructor.
TEST_F(StageBackground, FatalFailureJoinsNothing) {
    const Stage stages[] = {
        {"starts", Criticality::kFatal, StartsTwo},
        {"fails", Criticality::kFatal, FatalFailure},
        {"middle", Criticality::kDegrade, Middle},
        {"takes-scan", Criticality::kDegrade, TakesScan},
    };
    constexpr BackgroundSpec kLate[] = {
        {"scan", "starts", "", "takes-scan", ""},
        {"root", "starts", "", "middle", ""},
    };
    EXPECT_FALSE(RunStages(stages, ctx_, kLate));
    EXPECT_THAT(g_events, ElementsAre("stage starts", "stage fails"));
    EXPECT_THAT(ctx_.background.Pending(), ElementsAre("scan", "root"));
}

// The handle is typed: the wrong type gets nothing and leaves the work pending.
TEST_F(StageBackground, TakeIsTyped) {
    StartFake(ctx_, "scan");
    EXPECT_EQ(ctx_.background.Take<std::string>("scan"), nullptr);
    EXPECT_TRUE(ctx_.background.Running("scan"));
    auto scan = ctx_.background.Take<FakeWork>("scan");
    ASSERT_NE(scan, nullptr);
    EXPECT_EQ(scan->name, "scan");
    EXPECT_FALSE(ctx_.background.Running("scan"));
    EXPECT_EQ(ctx_.background.Take<FakeWork>("scan"), nullptr);
}

}  // namespace
}  // namespace peinit
