// The module planner (peinit/core/plan.h): mostly real libkmod (KmodDb) on the synthetic tree
// tests/fixtures/roots/basic, plus a small in-memory db for graph shapes depmod cannot produce,
// the stored plan (peinit/core/stored_plan.h), and `peinit plan` run as a process.

#include "peinit/core/plan.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "peinit/core/boot_plan.h"
#include "peinit/core/stored_plan.h"
#include "peinit/sys/kmod.h"
#include "tests/json_at.h"
#include "tests/unit/fixture_roots.h"

namespace peinit {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

class PlanTest : public ::testing::Test {
  protected:
    void SetUp() override {
        root_ = testing::FixtureRoot("basic");
        ASSERT_FALSE(root_.empty());
        auto db = KmodDb::Open(root_, testing::kFixtureKver);
        ASSERT_TRUE(db) << db.error().message();
        db_ = std::move(*db);
    }

    Plan Build(const PlanInput& input) {
        auto plan = BuildPlan(*db_, input);
        EXPECT_TRUE(plan) << plan.error().message();
        return plan ? *plan : Plan{};
    }

    Plan Request(const std::vector<std::string>& names, PlanInput input = {}) {
        for (const auto& n : names) input.requests.push_back({n, RequestOrigin::Unit("storage.toml"), "", false});
        return Build(input);
    }

    static const PlanEntry& Entry(const Plan& plan, const std::string& name) {
        static const PlanEntry kNone{};
        const PlanEntry* e = plan.Find(name);
        EXPECT_NE(e, nullptr) << name << " not in plan";
        return e ? *e : kNone;
    }

    static std::size_t Pos(const Plan& plan, const std::string& name) {
        std::size_t i = plan.IndexOf(name);
        EXPECT_LT(i, plan.entries.size()) << name << " not in plan";
        return i;
    }

    static std::vector<std::string> Names(const Plan& plan, ModuleStatus status) {
        std::vector<std::string> out;
        for (const auto& e : plan.entries) {
            if (e.status == status) out.push_back(e.name);
        }
        return out;
    }

    // Every loadable entry comes after everything it waits for, and waits for all its loadable
    // hard dependencies and soft pre dependencies.
    static void ExpectValidOrder(const Plan& plan) {
        std::set<std::string> seen;
        for (std::size_t i = 0; i < plan.entries.size(); ++i) {
            const auto& e = plan.entries[i];
            if (!e.Loadable()) continue;
            for (std::size_t w : e.waits_for) {
                EXPECT_LT(w, i) << e.name << " waits for a later entry";
                EXPECT_TRUE(plan.entries[w].Loadable());
            }
            for (const auto& dep : e.hard_deps) {
                EXPECT_TRUE(seen.count(dep)) << e.name << " before its dependency " << dep;
            }
            for (const auto& dep : e.soft_pre) {
                const PlanEntry* d = plan.Find(dep);
                if (d && d->Loadable()) {
                    EXPECT_TRUE(seen.count(dep)) << e.name << " before " << dep;
                }
            }
            seen.insert(e.name);
        }
        // No name twice.
        std::set<std::string> names;
        for (const auto& e : plan.entries) EXPECT_TRUE(names.insert(e.name).second) << e.name;
    }

    std::filesystem::path root_;
    std::unique_ptr<KmodDb> db_;
};

TEST_F(PlanTest, DependenciesComeFirst) {
    Plan plan = Request({"ext4"});
    EXPECT_TRUE(plan.ok()) << ::testing::PrintToString(plan.errors);
    ExpectValidOrder(plan);
    EXPECT_THAT(
        Names(plan, ModuleStatus::kLoad),
        UnorderedElementsAre("crc32c_generic", "crc32c_intel", "jbd2", "mbcache", "crc16", "ext4"));
    EXPECT_EQ(plan.entries.back().name, "ext4");
    const auto& ext4 = Entry(plan, "ext4");
    EXPECT_THAT(ext4.hard_deps, UnorderedElementsAre("jbd2", "mbcache", "crc16"));
    EXPECT_THAT(ext4.soft_pre, UnorderedElementsAre("crc32c_generic", "crc32c_intel"));
    EXPECT_EQ(ext4.path,
              (root_ / "lib/modules" / testing::kFixtureKver / "kernel/fs/ext4/ext4.ko").string());
    EXPECT_THAT(ext4.requested_by, ElementsAre("unit storage.toml"));
    EXPECT_THAT(Entry(plan, "jbd2").requested_by, ElementsAre("unit storage.toml -> ext4"));
    std::vector<std::string> waits;
    for (std::size_t w : ext4.waits_for) waits.push_back(plan.entries[w].name);
    EXPECT_THAT(waits,
                UnorderedElementsAre("crc32c_generic", "crc32c_intel", "jbd2", "mbcache", "crc16"));
    EXPECT_THAT(Entry(plan, "jbd2").waits_for, IsEmpty());
}

TEST_F(PlanTest, AliasRequestsResolveToTheModule) {
    Plan plan = Request({"fs-ext4"});
    EXPECT_TRUE(plan.ok());
    EXPECT_THAT(Entry(plan, "ext4").requested_by,
                ElementsAre("unit storage.toml -> alias fs-ext4"));
    EXPECT_THAT(Entry(plan, "mbcache").requested_by,
                ElementsAre("unit storage.toml -> alias fs-ext4 -> ext4"));
    // An alias several modules provide plans all of them, like modprobe.
    Plan crc = Request({"crc32c"});
    EXPECT_THAT(Names(crc, ModuleStatus::kLoad),
                UnorderedElementsAre("crc32c_generic", "crc32c_intel"));
}

TEST_F(PlanTest, SoftDependenciesPreBeforePostAfter) {
    Plan plan = Request({"soft_main"});
    EXPECT_TRUE(plan.ok());
    ExpectValidOrder(plan);
    EXPECT_LT(Pos(plan, "soft_pre"), Pos(plan, "soft_main"));
    EXPECT_GT(Pos(plan, "soft_post"), Pos(plan, "soft_main"));
    const auto& post = Entry(plan, "soft_post");
    EXPECT_THAT(post.waits_for, ElementsAre(Pos(plan, "soft_main")));
    EXPECT_THAT(Entry(plan, "soft_main").soft_post, ElementsAre("soft_post"));
}

TEST_F(PlanTest, SoftDependenciesFromModprobeDIncludingABuiltin) {
    Plan plan = Request({"soft_conf"});
    EXPECT_TRUE(plan.ok());
    ExpectValidOrder(plan);
    EXPECT_EQ(Entry(plan, "builtin_core").status, ModuleStatus::kBuiltin);
    EXPECT_EQ(Entry(plan, "builtin_core").path, "");
    EXPECT_LT(Pos(plan, "soft_pre"), Pos(plan, "soft_conf"));
    EXPECT_LT(Pos(plan, "builtin_core"), Pos(plan, "soft_conf"));
    EXPECT_GT(Pos(plan, "soft_post"), Pos(plan, "soft_conf"));
}

TEST_F(PlanTest, BuiltinsCountAsLoaded) {
    Plan plan = Request({"builtin_core", "fs-builtinfs"});
    EXPECT_TRUE(plan.ok());
    EXPECT_THAT(Names(plan, ModuleStatus::kBuiltin),
                UnorderedElementsAre("builtin_core", "builtin_fs"));
    EXPECT_THAT(Names(plan, ModuleStatus::kLoad), IsEmpty());
}

TEST_F(PlanTest, DenyingABuiltinIsReportedButItStaysLive) {
    // Nothing can unload a built-in: the plan says so instead of pretending to deny it.
    PlanInput input;
    input.blacklist.push_back({"builtin_core", "hive Blacklist"});
    Plan plan = Request({"soft_conf"}, input);
    EXPECT_TRUE(plan.ok());
    EXPECT_EQ(Entry(plan, "builtin_core").status, ModuleStatus::kBuiltin);
    EXPECT_EQ(Entry(plan, "builtin_core").reason,
              "blacklisted (hive Blacklist) but built into the kernel, so already live");
}

TEST_F(PlanTest, OptionsMergeModprobeDThenCmdlineThenRequest) {
    PlanInput input;
    input.options.push_back({"opt-mod", "b=5"});
    input.options.push_back({"ext4", "unrelated=1"});
    input.requests.push_back({"opt_mod", RequestOrigin::Unit("opt.toml"), "d=4", false});
    Plan plan = Build(input);
    EXPECT_TRUE(plan.ok());
    EXPECT_EQ(Entry(plan, "opt_mod").options, "a=1 b=2 c=3 b=5 d=4");
}

TEST_F(PlanTest, ModprobeDBlacklistDeniesAnExplicitRequest) {
    Plan plan = Request({"bl_conf"});
    EXPECT_TRUE(plan.ok()) << "a deny list is policy: a warning, not an error";
    const auto& e = Entry(plan, "bl_conf");
    EXPECT_EQ(e.status, ModuleStatus::kBlacklisted);
    EXPECT_EQ(e.reason, "/etc/modprobe.d/fixture.conf:3 blacklist bl_conf");
    EXPECT_THAT(plan.denied, ElementsAre("bl_conf: blacklisted (/etc/modprobe.d/fixture.conf:3 "
                                         "blacklist bl_conf), requested by unit storage.toml"));
}

TEST_F(PlanTest, ModprobeDBlacklistDeniesADependencyAndNamesIt) {
    Plan plan = Request({"bl_conf_top"});
    EXPECT_TRUE(plan.ok());
    EXPECT_THAT(Names(plan, ModuleStatus::kLoad), IsEmpty());
    EXPECT_THAT(plan.denied,
                ElementsAre("bl_conf_top: dependency bl_conf is blacklisted "
                            "(/etc/modprobe.d/fixture.conf:3 blacklist bl_conf) via unit "
                            "storage.toml -> bl_conf_top"));
    EXPECT_EQ(Entry(plan, "bl_conf_user").status, ModuleStatus::kSkipped);
    EXPECT_EQ(Entry(plan, "bl_conf").status, ModuleStatus::kBlacklisted);
}

TEST_F(PlanTest, InstallFalseIsABlacklist) {
    Plan direct = Request({"bl_false"});
    EXPECT_EQ(Entry(direct, "bl_false").status, ModuleStatus::kBlacklisted);
    EXPECT_THAT(direct.denied, ElementsAre(HasSubstr("install bl_false /bin/false")));
    Plan dep = Request({"bl_false_user"});
    EXPECT_THAT(dep.denied, ElementsAre("bl_false_user: dependency bl_false is blacklisted "
                                        "(/etc/modprobe.d/fixture.conf:4 install bl_false "
                                        "/bin/false) via unit storage.toml -> bl_false_user"));
}

TEST_F(PlanTest, CmdlineBlacklistDirectAndAsDependency) {
    PlanInput input;
    input.blacklist.push_back({"bl-cmd", "kernel command line modprobe.blacklist=bl-cmd"});
    Plan direct = Request({"bl_cmd"}, input);
    EXPECT_EQ(Entry(direct, "bl_cmd").status, ModuleStatus::kBlacklisted);
    EXPECT_EQ(Entry(direct, "bl_cmd").reason, "kernel command line modprobe.blacklist=bl-cmd");
    EXPECT_TRUE(direct.ok());
    Plan dep = Request({"bl_cmd_user"}, input);
    EXPECT_THAT(dep.denied, ElementsAre("bl_cmd_user: dependency bl_cmd is blacklisted (kernel "
                                        "command line modprobe.blacklist=bl-cmd) via unit "
                                        "storage.toml -> bl_cmd_user"));
}

TEST_F(PlanTest, HiveBlacklistDirectAndAsDependency) {
    PlanInput input;
    input.blacklist.push_back({"bl_hive", "hive Machine\\System\\Modules\\Blacklist"});
    Plan direct = Request({"bl_hive"}, input);
    EXPECT_EQ(Entry(direct, "bl_hive").status, ModuleStatus::kBlacklisted);
    EXPECT_TRUE(direct.ok());
    Plan dep = Request({"bl_hive_user"}, input);
    ASSERT_EQ(dep.denied.size(), 1u);
    EXPECT_THAT(dep.denied[0], HasSubstr("dependency bl_hive is blacklisted (hive "
                                         "Machine\\System\\Modules\\Blacklist)"));
    EXPECT_EQ(Entry(dep, "bl_hive_user").status, ModuleStatus::kSkipped);
}

TEST_F(PlanTest, DeniedHardDependencyLeavesTheRestOfItsClosureUnloaded) {
    // Like modprobe, nothing of a module that cannot load is loaded on its behalf.
    PlanInput input;
    input.blacklist.push_back({"jbd2", "kernel command line modprobe.blacklist=jbd2"});
    Plan plan = Request({"ext4", "soft_main"}, input);
    EXPECT_THAT(plan.denied, ElementsAre("ext4: dependency jbd2 is blacklisted (kernel command "
                                         "line modprobe.blacklist=jbd2) via unit storage.toml "
                                         "-> ext4"));
    EXPECT_THAT(Names(plan, ModuleStatus::kLoad),
                UnorderedElementsAre("soft_pre", "soft_main", "soft_post"));
    EXPECT_EQ(Entry(plan, "mbcache").status, ModuleStatus::kSkipped);
    EXPECT_EQ(Entry(plan, "mbcache").reason, "only wanted by ext4, which will not load");
    EXPECT_EQ(Entry(plan, "crc32c_intel").status, ModuleStatus::kSkipped);
}

TEST_F(PlanTest, DeniedSoftDependencyIsLeftOut) {
    PlanInput input;
    input.blacklist.push_back({"crc32c-intel", "kernel command line modprobe.blacklist="});
    Plan plan = Request({"ext4"}, input);
    EXPECT_TRUE(plan.ok()) << ::testing::PrintToString(plan.errors);
    EXPECT_EQ(Entry(plan, "crc32c_intel").status, ModuleStatus::kBlacklisted);
    EXPECT_EQ(Entry(plan, "crc32c_generic").status, ModuleStatus::kLoad);
    EXPECT_EQ(Entry(plan, "ext4").status, ModuleStatus::kLoad);
    ExpectValidOrder(plan);
}

TEST_F(PlanTest, SoftDependencyCycleIsAnError) {
    Plan plan = Request({"cyc_user"});
    EXPECT_THAT(plan.errors, Contains("dependency cycle: cyc_a -> cyc_b -> cyc_a"));
    EXPECT_THAT(plan.errors,
                Contains("cyc_user: dependency cyc_a is in dependency cycle cyc_a -> cyc_b -> "
                         "cyc_a via unit storage.toml -> cyc_user"));
    EXPECT_EQ(Entry(plan, "cyc_a").status, ModuleStatus::kSkipped);
    EXPECT_EQ(Entry(plan, "cyc_b").status, ModuleStatus::kSkipped);
    EXPECT_THAT(Names(plan, ModuleStatus::kLoad), IsEmpty());
}

TEST_F(PlanTest, MissingModules) {
    Plan plan = Request({"no_such_module", "ghost-alias", "gone_dep"});
    EXPECT_EQ(Entry(plan, "no_such_module").status, ModuleStatus::kMissing);
    EXPECT_EQ(Entry(plan, "ghost_mod").status, ModuleStatus::kMissing);
    EXPECT_EQ(Entry(plan, "gone_dep").status, ModuleStatus::kMissing);
    EXPECT_THAT(Entry(plan, "gone_dep").reason, HasSubstr("gone_dep.ko does not exist"));
    EXPECT_THAT(plan.errors,
                ElementsAre("no_such_module: missing (no module or alias named no_such_module "
                            "in the module tree), requested by unit storage.toml",
                            "ghost_mod: missing (not in the module tree), requested by unit "
                            "storage.toml -> alias ghost-alias",
                            HasSubstr("gone_dep: missing (")));
    EXPECT_THAT(Names(plan, ModuleStatus::kLoad), IsEmpty());
}

TEST_F(PlanTest, IndexNamingAMissingDependencyIsAWarning) {
    // libkmod drops a modules.dep entry whose file is gone (so gone_user appears to have no
    // dependencies); the plan carries libkmod's complaint instead of hiding it.
    Plan plan = Request({"gone_user"});
    EXPECT_THAT(plan.warnings, Contains(HasSubstr("gone_dep.ko")));
    Plan clean = Request({"ext4"});
    EXPECT_THAT(clean.warnings, IsEmpty());
}

TEST_F(PlanTest, OptionalMissingModuleIsNotAnError) {
    PlanInput input;
    input.requests.push_back({"no_such_module", RequestOrigin::Unit("extra.toml"), "", true});
    input.requests.push_back({"bl_conf", RequestOrigin::Unit("extra.toml"), "", true});
    Plan plan = Build(input);
    EXPECT_EQ(Entry(plan, "no_such_module").status, ModuleStatus::kMissing);
    // Optional only forgives absence: a denied module is still reported (as policy).
    EXPECT_THAT(plan.denied, ElementsAre(HasSubstr("bl_conf: blacklisted")));
}

TEST_F(PlanTest, EachModuleOnceWhateverReachesIt) {
    PlanInput input;
    input.requests.push_back({"dia_top", RequestOrigin::Unit("a.toml"), "", false});
    input.requests.push_back({"dia-left", RequestOrigin::Unit("b.toml"), "", false});
    input.requests.push_back({"dia_top", RequestOrigin::Cmdline(), "", false});
    Plan plan = Build(input);
    EXPECT_TRUE(plan.ok());
    ExpectValidOrder(plan);
    EXPECT_EQ(plan.entries.size(), 4u);
    EXPECT_THAT(Entry(plan, "dia_top").requested_by, ElementsAre("unit a.toml", "modules_load="));
    EXPECT_THAT(Entry(plan, "dia_base").requested_by,
                UnorderedElementsAre("unit a.toml -> dia_top", "unit b.toml -> dia_left",
                                     "unit a.toml -> dia_top -> dia_right"));
    EXPECT_EQ(Pos(plan, "dia_base"), 0u);
    EXPECT_EQ(Pos(plan, "dia_top"), 3u);
    // The same facts as indices into the requests, for code (no chain is parsed back).
    EXPECT_THAT(Entry(plan, "dia_top").direct, ElementsAre(0u, 2u));
    EXPECT_THAT(Entry(plan, "dia_left").direct, ElementsAre(1u));
    EXPECT_THAT(Entry(plan, "dia_base").direct, IsEmpty());
    EXPECT_THAT(Entry(plan, "dia_base").wanted_by, ElementsAre(0u, 1u, 2u));
    EXPECT_THAT(Entry(plan, "dia_right").wanted_by, ElementsAre(0u, 2u));
}

TEST_F(PlanTest, ForeignInstallCommandIsReportedNotRun) {
    Plan plan = Request({"odd_install"});
    EXPECT_TRUE(plan.ok());
    EXPECT_EQ(Entry(plan, "odd_install").status, ModuleStatus::kLoad);
    EXPECT_THAT(Entry(plan, "odd_install").ignored_install_command,
                HasSubstr("--ignore-install odd_install"));
}

TEST_F(PlanTest, Deterministic) {
    PlanInput input;
    for (const char* m : {"ext4", "dia_top", "soft_conf", "bl_conf_top", "cyc_user"}) {
        input.requests.push_back({m, RequestOrigin::Unit("all.toml"), "", false});
    }
    Plan a = Build(input);
    auto other_db = KmodDb::Open(root_, testing::kFixtureKver);
    ASSERT_TRUE(other_db);
    auto b = BuildPlan(**other_db, input);
    ASSERT_TRUE(b);
    ASSERT_EQ(a.entries.size(), b->entries.size());
    for (std::size_t i = 0; i < a.entries.size(); ++i) {
        EXPECT_EQ(a.entries[i].name, b->entries[i].name);
        EXPECT_EQ(a.entries[i].waits_for, b->entries[i].waits_for);
        EXPECT_EQ(a.entries[i].reason, b->entries[i].reason);
    }
    EXPECT_EQ(a.errors, b->errors);
}

// A db whose graphs depmod cannot produce: non-transitive hard deps, post cycles.
class MemoryDb : public ModuleDb {
  public:
    ModuleRecord& Add(const std::string& name) {
        ModuleRecord& r = modules_[name];
        r.name = name;
        r.path = "/lib/modules/x/" + name + ".ko";
        return r;
    }
    Result<std::vector<std::string>> Lookup(std::string_view name) override {
        if (modules_.count(std::string(name))) return std::vector<std::string>{std::string(name)};
        return std::vector<std::string>{};
    }
    Result<ModuleRecord> Describe(std::string_view name) override {
        auto it = modules_.find(std::string(name));
        if (it == modules_.end()) return Err("unknown module " + std::string(name));
        return it->second;
    }

  private:
    std::map<std::string, ModuleRecord> modules_;
};

TEST(PlanMemoryDb, SkipNamesTheRootCauseThroughIntermediateModules) {
    MemoryDb db;
    db.Add("top").hard_deps = {"mid"};
    db.Add("mid").hard_deps = {"low"};
    db.Add("low").denied_by = "hive Blacklist";
    PlanInput input;
    input.requests.push_back({"top", RequestOrigin::Unit("t.toml"), "", false});
    auto plan = BuildPlan(db, input);
    ASSERT_TRUE(plan);
    EXPECT_THAT(plan->denied, ElementsAre("top: dependency low is blacklisted (hive Blacklist) "
                                          "via unit t.toml -> top"));
    EXPECT_THAT(plan->Find("mid")->reason,
                "dependency low is blacklisted (hive Blacklist) via unit t.toml -> top -> mid");
}

TEST(PlanMemoryDb, PostCycleAndSelfCycle) {
    MemoryDb db;
    db.Add("a").soft_post = {"b"};
    db.Add("b").soft_post = {"a"};
    db.Add("self").soft_pre = {"self"};
    db.Add("fine");
    PlanInput input;
    for (const char* m : {"a", "self", "fine"}) input.requests.push_back({m, RequestOrigin::Other("test"), "", false});
    auto plan = BuildPlan(db, input);
    ASSERT_TRUE(plan);
    EXPECT_THAT(plan->errors, Contains("dependency cycle: a -> b -> a"));
    EXPECT_THAT(plan->errors, Contains("dependency cycle: self -> self"));
    EXPECT_EQ(plan->Find("fine")->status, ModuleStatus::kLoad);
    EXPECT_EQ(plan->Find("b")->status, ModuleStatus::kSkipped);
}

TEST(PlanMemoryDb, DbFailureIsAnError) {
    MemoryDb db;
    db.Add("a").hard_deps = {"vanished"};
    PlanInput input;
    input.requests.push_back({"a", RequestOrigin::Other("test"), "", false});
    auto plan = BuildPlan(db, input);
    ASSERT_FALSE(plan);
    EXPECT_THAT(plan.error().message(), HasSubstr("vanished"));
}

// The stored plan (peinit/core/stored_plan.h): the answers recorded from libkmod, written and
// read back, and the planner over them against the planner over libkmod. The module stage's use
// of it is in module_stage_test.cpp.
class StoredPlanTest : public PlanTest {
  protected:
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

// `peinit plan` as a process.
class PlanCliTest : public PlanTest {
  protected:
    testing::CommandResult Run(std::vector<std::string> args) {
        args.insert(args.begin(), {testing::PeinitBinary().string(), "plan"});
        return testing::RunCommand(args);
    }
    std::vector<std::string> Base() {
        return {"--root", root_.string(), "--kver", testing::kFixtureKver};
    }
};

TEST_F(PlanCliTest, PrintsModulesInLoadOrder) {
    ASSERT_TRUE(std::filesystem::exists(testing::PeinitBinary())) << testing::PeinitBinary();
    auto args = Base();
    args.insert(args.end(), {"--module", "ext4", "--cmdline", "opt_mod.b=5 modules_load=opt_mod"});
    auto r = Run(args);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    auto jbd2 = r.out.find(". jbd2\n");
    auto ext4 = r.out.find(". ext4\n");
    ASSERT_NE(jbd2, std::string::npos) << r.out;
    ASSERT_NE(ext4, std::string::npos) << r.out;
    EXPECT_LT(jbd2, ext4);
    std::string kver = testing::kFixtureKver;
    EXPECT_THAT(r.out,
                HasSubstr("   path:       /lib/modules/" + kver + "/kernel/fs/ext4/ext4.ko\n"));
    EXPECT_THAT(r.out, HasSubstr("   options:    a=1 b=2 c=3 b=5\n"));
    EXPECT_THAT(r.out, HasSubstr("   wanted by:  modules_load=\n"));
    EXPECT_THAT(r.out, HasSubstr("   status:     load\n"));
    // Same input, same bytes.
    EXPECT_EQ(Run(args).out, r.out);
}

// A deny list is deliberate policy: the plan explains it as a warning and exits 0 (as
// `peinit-image build` warns and `peinitctl status` notes it).
TEST_F(PlanCliTest, ExplainsWhatIsDeniedAsAWarning) {
    auto args = Base();
    args.insert(args.end(), {"--module", "bl_conf_top", "--cmdline", "modprobe.blacklist=jbd2",
                             "--module", "ext4"});
    auto r = Run(args);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_EQ(r.out.find("errors:"), std::string::npos) << r.out;
    EXPECT_THAT(r.out, HasSubstr("warnings:\n  bl_conf_top: dependency bl_conf is blacklisted "
                                 "(/etc/modprobe.d/fixture.conf:3 blacklist bl_conf) via "
                                 "--module -> bl_conf_top\n"));
    EXPECT_THAT(r.out, HasSubstr("  ext4: dependency jbd2 is blacklisted (kernel command line "
                                 "modprobe.blacklist=jbd2) via --module -> ext4\n"));
}

TEST_F(PlanCliTest, Json) {
    auto args = Base();
    args.insert(args.end(), {"--module", "soft_main", "--module", "nope", "--json"});
    auto r = Run(args);
    EXPECT_EQ(r.status, 1) << r.err;
    // The formatting of every JSON peinit writes (peinit/core/json.h): sorted keys.
    testing::TestJson doc(r.out);
    ASSERT_TRUE(doc.ok());
    EXPECT_EQ(doc.Int("version"), 1);
    EXPECT_TRUE(doc.At("ok").IsBool()) << r.out;
    EXPECT_FALSE(doc.Bool("ok"));
    EXPECT_EQ(doc.Str("kver"), testing::kFixtureKver);
    std::map<std::string, std::string> modules;  // name -> its path in the document
    for (std::size_t i = 0; i < doc.Size("modules"); ++i) {
        const std::string at = "modules." + std::to_string(i);
        modules[doc.Str(at + ".name")] = at;
    }
    ASSERT_TRUE(modules.count("soft_post")) << r.out;
    ASSERT_TRUE(modules.count("nope")) << r.out;
    EXPECT_EQ(doc.Str(modules["soft_post"] + ".status"), "load");
    EXPECT_EQ(doc.Str(modules["soft_post"] + ".waits_for.0"), "soft_main");
    EXPECT_EQ(doc.Str(modules["nope"] + ".status"), "missing");
    EXPECT_THAT(r.out, HasSubstr("\"version\" : 1,"));
}

TEST_F(PlanCliTest, UnitsHiveAndCmdlineTogether) {
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/peinit-plan-cli-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs::path dir = tmpl;
    fs::create_directories(dir / "units");
    std::ofstream(dir / "units/storage.toml") << "[[module]]\nname = \"fs-ext4\"\n\n"
                                                 "[[module]]\nname = \"opt_mod\"\n"
                                                 "options = \"d=4\"\n";
    std::ofstream(dir / "units/extra.conf") << "# modules-load.d list\nbl_hive_user\n";
    std::ofstream(dir / "hive.toml") << "['Machine\\System\\Modules']\nBlacklist = [\"bl_hive\"]\n";
    auto args = Base();
    args.insert(args.end(), {"--units", (dir / "units").string(), "--hive",
                             (dir / "hive.toml").string(), "--cmdline", "opt_mod.b=5"});
    auto r = Run(args);
    fs::remove_all(dir);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_THAT(r.out, HasSubstr("   wanted by:  unit storage -> alias fs-ext4\n"));
    EXPECT_THAT(r.out, HasSubstr("   options:    a=1 b=2 c=3 b=5 d=4\n"));
    EXPECT_THAT(r.out, HasSubstr("warnings:\n  bl_hive_user: dependency bl_hive is blacklisted "
                                 "(hive Machine\\System\\Modules\\Blacklist) via unit "
                                 "extra -> bl_hive_user\n"));
}

TEST_F(PlanCliTest, BadUnitsExitTwo) {
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/peinit-plan-cli-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs::path dir = tmpl;
    std::ofstream(dir / "bad.toml") << "[[module]]\nnmae = \"ext4\"\n";
    auto args = Base();
    args.insert(args.end(), {"--units", dir.string()});
    auto r = Run(args);
    fs::remove_all(dir);
    EXPECT_EQ(r.status, 2) << r.out;
    EXPECT_THAT(r.err, HasSubstr("bad.toml:"));
}

// kernel/build's output (DIR/modroot/lib/modules/KVER, DIR/kver) is understood, the release
// defaults to DIR/kver, and --compact prints one line per load like `modprobe --show-depends`.
TEST_F(PlanCliTest, KernelBuildLayoutDefaultReleaseAndCompact) {
    namespace fs = std::filesystem;
    char tmpl[] = "/tmp/peinit-plan-cli-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs::path dir = tmpl;
    fs::create_directory_symlink(root_, dir / "modroot");
    std::ofstream(dir / "kver") << testing::kFixtureKver << "\n";
    auto r = Run({"--root", dir.string(), "--module", "ext4", "--cmdline", "ext4.x=1", "--compact"});
    fs::remove_all(dir);
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    const std::string mods = std::string("/lib/modules/") + testing::kFixtureKver + "/kernel/";
    auto jbd2 = r.out.find("insmod " + mods + "fs/jbd2/jbd2.ko\n");
    auto ext4 = r.out.find("insmod " + mods + "fs/ext4/ext4.ko x=1\n");
    ASSERT_NE(jbd2, std::string::npos) << r.out;
    ASSERT_NE(ext4, std::string::npos) << r.out;
    EXPECT_LT(jbd2, ext4);
    EXPECT_EQ(Run({"--root", root_.string(), "--json", "--compact"}).status, 2);
}

TEST_F(PlanCliTest, UsageAndIoErrorsExitTwo) {
    EXPECT_EQ(Run({"--help"}).status, 0);
    EXPECT_THAT(Run({"--help"}).out, HasSubstr("usage: peinit plan"));
    // No --kver and no DIR/kver: `uname -r`, which the fixture tree does not have.
    EXPECT_EQ(Run({"--root", root_.string()}).status, 2);
    EXPECT_EQ(Run({"--kver", "1", "--root", "/nonexistent-root"}).status, 2);  // no tree
    auto bad = Base();
    bad.push_back("--frobnicate");
    auto frobnicate = Run(bad);
    EXPECT_EQ(frobnicate.status, 2);
    EXPECT_THAT(frobnicate.err, HasSubstr("peinit plan: unknown option \"--frobnicate\"\n"));
    EXPECT_THAT(Run({"--root", root_.string()}).err, HasSubstr(": no such module directory"));
    EXPECT_EQ(Run(Base()).status, 0);  // nothing requested: an empty, valid plan
}

}  // namespace
}  // namespace peinit
