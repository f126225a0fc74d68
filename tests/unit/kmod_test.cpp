// peinit/sys/kmod.h against the synthetic tree tests/fixtures/roots/basic (real depmod indexes,
// real libkmod).

#include "peinit/sys/kmod.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>

#include "tests/unit/fixture_roots.h"

namespace peinit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class KmodTest : public ::testing::Test {
  protected:
    void SetUp() override {
        root_ = testing::FixtureRoot("basic");
        ASSERT_FALSE(root_.empty());
        auto kmod = Kmod::Open(root_, testing::kFixtureKver);
        ASSERT_TRUE(kmod) << kmod.error().message();
        kmod_ = std::move(*kmod);
    }

    std::vector<std::string> LookupNames(const std::string& what) {
        auto mods = kmod_->Lookup(what);
        EXPECT_TRUE(mods) << mods.error().message();
        std::vector<std::string> names;
        if (mods) {
            for (const auto& m : *mods) names.push_back(m.Name());
        }
        return names;
    }

    KmodModule Module(const std::string& name) {
        auto m = kmod_->FromName(name);
        EXPECT_TRUE(m);
        return std::move(*m);
    }

    static std::vector<std::string> Names(const std::vector<KmodModule>& mods) {
        std::vector<std::string> out;
        for (const auto& m : mods) out.push_back(m.Name());
        return out;
    }

    std::filesystem::path root_;
    std::unique_ptr<Kmod> kmod_;
};

TEST_F(KmodTest, OpenFailsForAMissingKernelRelease) {
    auto kmod = Kmod::Open(root_, "0.0.0-nope");
    ASSERT_FALSE(kmod);
    EXPECT_THAT(kmod.error().message(), HasSubstr("lib/modules/0.0.0-nope"));
}

TEST_F(KmodTest, LooksUpNamesAndAliases) {
    EXPECT_THAT(LookupNames("ext4"), ElementsAre("ext4"));
    EXPECT_THAT(LookupNames("fs-ext4"), ElementsAre("ext4"));
    // crc32c-intel.ko: the kernel's name has an underscore; either spelling finds it.
    EXPECT_THAT(LookupNames("crc32c-intel"), ElementsAre("crc32c_intel"));
    EXPECT_THAT(LookupNames("crc32c"), UnorderedElementsAre("crc32c_generic", "crc32c_intel"));
    EXPECT_THAT(LookupNames("ghost-alias"), ElementsAre("ghost_mod"));  // modprobe.d alias
    EXPECT_THAT(LookupNames("no_such_module"), ElementsAre());
}

TEST_F(KmodTest, PathIsUnderTheRoot) {
    EXPECT_EQ(Module("ext4").Path(),
              (root_ / "lib/modules" / testing::kFixtureKver / "kernel/fs/ext4/ext4.ko").string());
    EXPECT_EQ(Module("builtin_core").Path(), "");
}

TEST_F(KmodTest, HardDependenciesComeFromModulesDep) {
    auto deps = Module("ext4").Dependencies();
    ASSERT_TRUE(deps);
    EXPECT_THAT(Names(*deps), UnorderedElementsAre("jbd2", "mbcache", "crc16"));
    // depmod lists the transitive closure.
    auto top = Module("bl_conf_top").Dependencies();
    ASSERT_TRUE(top);
    EXPECT_THAT(Names(*top), UnorderedElementsAre("bl_conf_user", "bl_conf"));
}

TEST_F(KmodTest, BuiltinComesFromTheTreesIndexNotFromSysModule) {
    EXPECT_TRUE(Module("builtin_core").IsBuiltin());
    auto by_alias = kmod_->Lookup("fs-builtinfs");  // modules.builtin.modinfo alias
    ASSERT_TRUE(by_alias);
    ASSERT_THAT(Names(*by_alias), ElementsAre("builtin_fs"));
    EXPECT_TRUE((*by_alias)[0].IsBuiltin());
    // jbd2 is a loadable module in this tree, whatever the machine running the test has in
    // /sys/module (kmod_module_get_initstate would report the host's state).
    EXPECT_FALSE(Module("jbd2").IsBuiltin());
    EXPECT_FALSE(Module("ext4").IsBuiltin());
}

TEST_F(KmodTest, SoftDependenciesFromModinfoAndModprobeD) {
    auto main = Module("soft_main").SoftDependencies();
    ASSERT_TRUE(main);
    EXPECT_THAT(Names(main->pre), ElementsAre("soft_pre"));
    EXPECT_THAT(Names(main->post), ElementsAre("soft_post"));
    auto conf = Module("soft_conf").SoftDependencies();
    ASSERT_TRUE(conf);
    EXPECT_THAT(Names(conf->pre), ElementsAre("soft_pre", "builtin_core"));
    EXPECT_THAT(Names(conf->post), ElementsAre("soft_post"));
    // A soft dependency on an alias yields every module providing it.
    auto ext4 = Module("ext4").SoftDependencies();
    ASSERT_TRUE(ext4);
    EXPECT_THAT(Names(ext4->pre), UnorderedElementsAre("crc32c_generic", "crc32c_intel"));
}

TEST_F(KmodTest, OptionsFollowFileOrderAndShadowing) {
    // etc/modprobe.d/options.conf shadows lib/modprobe.d/options.conf; run/.../zz-options.conf
    // sorts after it.
    EXPECT_EQ(Module("opt_mod").Options(), "a=1 b=2 c=3");
    EXPECT_EQ(Module("ext4").Options(), "");
}

TEST_F(KmodTest, BlacklistAndItsSource) {
    EXPECT_TRUE(kmod_->IsBlacklisted("bl_conf"));
    EXPECT_FALSE(kmod_->IsBlacklisted("dia_base"));  // only in the shadowed file
    EXPECT_FALSE(kmod_->IsBlacklisted("ext4"));
    auto src = kmod_->FindSource("blacklist", "bl_conf");
    ASSERT_TRUE(src);
    EXPECT_EQ(src->file, root_ / "etc/modprobe.d/fixture.conf");
    EXPECT_EQ(src->line, 3);
    EXPECT_FALSE(kmod_->FindSource("blacklist", "dia_base"));
}

TEST_F(KmodTest, InstallCommands) {
    EXPECT_EQ(Module("bl_false").InstallCommand().value_or(""), "/bin/false");
    EXPECT_FALSE(Module("ext4").InstallCommand());
    auto src = kmod_->FindSource("install", "bl_false");
    ASSERT_TRUE(src);
    EXPECT_EQ(src->line, 4);
}

TEST(KmodInstallIdiom, FalseAndTrueMeanNeverLoad) {
    EXPECT_TRUE(IsDenyInstallCommand("/bin/false"));
    EXPECT_TRUE(IsDenyInstallCommand("  /usr/bin/false ; "));
    EXPECT_TRUE(IsDenyInstallCommand("false"));
    EXPECT_TRUE(IsDenyInstallCommand("/bin/true"));
    EXPECT_FALSE(IsDenyInstallCommand("/sbin/modprobe --ignore-install foo"));
    EXPECT_FALSE(IsDenyInstallCommand("/bin/false || /sbin/modprobe foo"));
    EXPECT_FALSE(IsDenyInstallCommand("/bin/falsely"));
    EXPECT_FALSE(IsDenyInstallCommand(""));
}

TEST_F(KmodTest, DbDescribesDenialsWithTheirSource) {
    KmodDb db(std::move(kmod_));
    auto bl = db.Describe("bl_conf");
    ASSERT_TRUE(bl);
    EXPECT_EQ(bl->denied_by, "/etc/modprobe.d/fixture.conf:3 blacklist bl_conf");
    auto f = db.Describe("bl_false");
    ASSERT_TRUE(f);
    EXPECT_EQ(f->denied_by, "/etc/modprobe.d/fixture.conf:4 install bl_false /bin/false");
    auto odd = db.Describe("odd_install");
    ASSERT_TRUE(odd);
    EXPECT_EQ(odd->denied_by, "");
    EXPECT_THAT(odd->install_command, HasSubstr("--ignore-install odd_install"));
    auto gone = db.Describe("gone_dep");
    ASSERT_TRUE(gone);
    EXPECT_FALSE(gone->path.empty());
    EXPECT_FALSE(gone->file_present);
    auto ext4 = db.Describe("ext4");
    ASSERT_TRUE(ext4);
    EXPECT_TRUE(ext4->file_present);
    EXPECT_FALSE(ext4->builtin);
    EXPECT_EQ(ext4->denied_by, "");
}

}  // namespace
}  // namespace peinit
