// The stored plan (peinit/core/stored_plan.h): the answers recorded from libkmod on the synthetic
// tree tests/fixtures/roots/basic, written and read back, and the planner over them against the
// planner over libkmod. The module stage's use of it is in module_stage_test.cpp.

#include "peinit/core/stored_plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "peinit/core/boot_plan.h"
#include "peinit/sys/kmod.h"
#include "tests/unit/fixture_roots.h"

namespace peinit {
namespace {

using ::testing::HasSubstr;

class StoredPlanTest : public ::testing::Test {
  protected:
    void SetUp() override {
        root_ = testing::FixtureRoot("basic");
        ASSERT_FALSE(root_.empty());
        auto db = KmodDb::Open(root_, testing::kFixtureKver);
        ASSERT_TRUE(db) << db.error().message();
        db_ = std::move(*db);
    }

    // What the boot asks for, through the one collector: units with aliases, options, optional
    // and soft dependencies, the hive's blacklist, modules_load= and mod.param=.
    static PlanInput Input(const std::string& cmdline) {
        ConfigErrors errors;
        std::vector<Unit> units;
        for (auto [name, text] :
             {std::pair{"storage", "[[module]]\nname = \"fs-ext4\"\n[[module]]\nname = "
                                   "\"soft_main\"\n[[module]]\nname = \"nope\"\noptional = true\n"},
              std::pair{"extra", "[[module]]\nname = \"bl_hive_user\"\n[[module]]\nname = "
                                 "\"opt_mod\"\noptions = \"d=4\"\n[[module]]\nname = \"dia_top\"\n"}}) {
            auto unit = ParseUnitFile(std::string("units/") + name + ".toml", text, errors);
            EXPECT_TRUE(unit);
            if (unit) units.push_back(std::move(*unit));
        }
        UnitSet set = LinkUnits(std::move(units), errors);
        EXPECT_TRUE(errors.empty());
        Hive hive;
        hive.state = HiveState::kLoaded;
        hive.values.blacklist = {"bl_hive"};
        Cmdline cmd = ParseCmdline(cmdline);
        return CollectBootPlanInput(set, ComputeEffectivePolicy(hive, cmd), cmd).input;
    }

    std::string Render(const Plan& plan) {
        return RenderPlanJson(plan, {"test", "root", testing::kFixtureKver, root_.string()});
    }

    std::filesystem::path root_;
    std::unique_ptr<KmodDb> db_;
};

TEST_F(StoredPlanTest, WrittenAndReadBackTheSame) {
    auto recorded = RecordPlan(*db_, Input("modules_load=cyc_user"), root_.string(), "6.1.0-x");
    ASSERT_TRUE(recorded) << recorded.error().message();
    const StoredPlan& stored = recorded->stored;
    EXPECT_EQ(stored.kernel_release, "6.1.0-x");
    ASSERT_EQ(stored.facts.lookups.count("fs-ext4"), 1u);
    EXPECT_EQ(stored.facts.lookups.at("fs-ext4"), std::vector<std::string>{"ext4"});
    ASSERT_EQ(stored.facts.modules.count("ext4"), 1u);
    // Paths are relative to the root, so the image's root at boot can be anywhere.
    EXPECT_EQ(stored.facts.modules.at("ext4").path,
              "lib/modules/" + std::string(testing::kFixtureKver) + "/kernel/fs/ext4/ext4.ko");
    const std::string text = stored.ToToml();
    auto back = StoredPlan::FromToml(text, "plan.toml");
    ASSERT_TRUE(back) << back.error().message() << "\n" << text;
    EXPECT_EQ(back->kernel_release, stored.kernel_release);
    EXPECT_EQ(back->facts, stored.facts);
    EXPECT_EQ(back->ToToml(), text);
}

TEST_F(StoredPlanTest, NewerVersionAndBrokenFieldsAreRefused) {
    auto newer = StoredPlan::FromToml("version = 2\nkernel_release = \"k\"\nwarnings = []\n", "p");
    ASSERT_FALSE(newer);
    EXPECT_EQ(newer.error().message(), "p: version 2 is newer than this reader's 1 (the image was "
                                       "built by a newer peinit-image)");
    auto untyped = StoredPlan::FromToml("version = 1\nkernel_release = 3\nwarnings = []\n", "p");
    ASSERT_FALSE(untyped);
    EXPECT_THAT(untyped.error().message(), HasSubstr("\"kernel_release\" must be a string"));
    auto absolute = StoredPlan::FromToml(
        "version = 1\nkernel_release = \"k\"\nwarnings = []\n[[module]]\nname = \"a\"\n"
        "canonical = \"a\"\npath = \"/lib/a.ko\"\nbuiltin = false\nfile_present = true\n"
        "hard_deps = []\nsoft_pre = []\nsoft_post = []\noptions = \"\"\ndenied_by = \"\"\n"
        "install_command = \"\"\n",
        "p");
    ASSERT_FALSE(absolute);
    EXPECT_THAT(absolute.error().message(), HasSubstr("path must be relative to the root"));
}

// Acceptance (issue 26): the stored plan gives what boot-time planning (libkmod) gives for the
// same input, and for a tighter one (the running command line's blacklist and options); a request
// the build never planned is an error, not a guess.
TEST_F(StoredPlanTest, PlansWhatLibkmodPlans) {
    const PlanInput built_for = Input("opt_mod.b=5");
    auto recorded = RecordPlan(*db_, built_for, root_.string(), testing::kFixtureKver);
    ASSERT_TRUE(recorded) << recorded.error().message();
    auto stored = StoredPlan::FromToml(recorded->stored.ToToml(), "plan.toml");
    ASSERT_TRUE(stored) << stored.error().message();
    StoredModuleDb db(stored->facts, root_.string());

    for (const std::string cmdline :
         {"opt_mod.b=5", "opt_mod.b=5 modprobe.blacklist=jbd2",
          "modprobe.blacklist=dia_left,soft_pre opt_mod.e=1"}) {
        SCOPED_TRACE(cmdline);
        const PlanInput input = Input(cmdline);
        auto from_kmod = BuildPlan(*db_, input);
        ASSERT_TRUE(from_kmod) << from_kmod.error().message();
        auto from_stored = BuildPlan(db, input);
        ASSERT_TRUE(from_stored) << from_stored.error().message();
        EXPECT_EQ(Render(*from_stored), Render(*from_kmod));
        ASSERT_EQ(from_stored->entries.size(), from_kmod->entries.size());
        for (std::size_t i = 0; i < from_kmod->entries.size(); ++i) {
            EXPECT_EQ(from_stored->entries[i].path, from_kmod->entries[i].path);
            EXPECT_EQ(from_stored->entries[i].wanted_by, from_kmod->entries[i].wanted_by);
        }
    }
    EXPECT_EQ(Render(recorded->plan), Render(*BuildPlan(*db_, built_for)));

    auto uncovered = BuildPlan(db, Input("modules_load=crc16"));
    ASSERT_FALSE(uncovered);
    EXPECT_EQ(uncovered.error().message(), "the stored plan has no answer for \"crc16\"");
}

}  // namespace
}  // namespace peinit
