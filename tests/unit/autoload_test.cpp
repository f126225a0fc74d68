// Demand loads: the shared policy decision (DecideDemandLoad), the helper's argument
// parsing, the autoload stage (kernel.modprobe written, emptied, read back) on FakeKernel, and the
// helper end to end (RunDemandLoadHelper) on the synthetic tree tests/fixtures/roots/autoload with
// signed packages made at test time.

#include "stages/autoload/autoload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/module_lockdown.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <tuple>

#include "peinit/core/demand_load.h"
#include "tests/fakes/fake_kernel.h"
#include "peinit/sys/package.h"
#include "peinit/sys/package_crypto.h"
#include "peinit/modload/session.h"
#include "peinit/helper/helper.h"
#include "tests/unit/captured_log.h"
#include "tests/unit/demand_root.h"
#include "tests/unit/fixture_roots.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using Verdict = DemandDecision::Verdict;

// --- the decision table ----------------------------------------------------------------------

EffectivePolicy PolicyOf(AutoLoadPolicy mode, bool blacklisted, bool allowed) {
    EffectivePolicy p;
    p.autoload.value = mode;
    p.autoload.source = PolicySource::kHive;
    if (blacklisted) p.blacklist.push_back({"af_packet", PolicySource::kHive});
    p.blacklist.push_back({"floppy", PolicySource::kCmdline});
    p.autoload_allowed = {"e1000e"};
    if (allowed) p.autoload_allowed.push_back("af_packet");
    return p;
}

class DecisionTable : public ::testing::TestWithParam<
                          std::tuple<AutoLoadPolicy, bool /*blacklisted*/, bool /*allowed*/>> {};

TEST_P(DecisionTable, MatchesTheRules) {
    auto [mode, blacklisted, allowed] = GetParam();
    DemandDecision d =
        DecideDemandLoad(PolicyOf(mode, blacklisted, allowed), "net-pf-17", "af_packet");
    Verdict want = Verdict::kAllow;
    if (blacklisted) {
        want = Verdict::kBlacklisted;  // the blacklist applies in every mode
    } else if (mode == AutoLoadPolicy::kDisabled) {
        want = Verdict::kPolicyDisabled;
    } else if (mode == AutoLoadPolicy::kAllowList && !allowed) {
        want = Verdict::kNotAllowListed;
    }
    EXPECT_EQ(d.verdict, want) << d.reason;
    EXPECT_EQ(d.allowed(), want == Verdict::kAllow);
    switch (want) {
        case Verdict::kAllow:
            EXPECT_EQ(d.reason, mode == AutoLoadPolicy::kAllowList ? "in AutoLoadAllowed"
                                                                   : "AutoLoadPolicy is enabled");
            break;
        case Verdict::kBlacklisted:
            EXPECT_EQ(d.reason, "blacklisted (hive Machine\\System\\Modules\\Blacklist)");
            break;
        case Verdict::kPolicyDisabled:
            EXPECT_EQ(d.reason, "AutoLoadPolicy is disabled");
            break;
        case Verdict::kNotAllowListed:
            EXPECT_EQ(d.reason, "not in AutoLoadAllowed");
            break;
    }
}

INSTANTIATE_TEST_SUITE_P(AllModes, DecisionTable,
                         ::testing::Combine(::testing::Values(AutoLoadPolicy::kEnabled,
                                                              AutoLoadPolicy::kAllowList,
                                                              AutoLoadPolicy::kDisabled),
                                            ::testing::Bool(), ::testing::Bool()));

TEST(DemandDecision, NamesAreNormalisedAndCommandLineBlacklistIsNamed) {
    EffectivePolicy p = PolicyOf(AutoLoadPolicy::kAllowList, false, false);
    p.autoload_allowed.push_back("snd-hda-intel");
    EXPECT_TRUE(DecideDemandLoad(p, "pci:x", "snd_hda_intel").allowed());
    EXPECT_TRUE(DecideDemandLoad(p, "pci:x", "snd-hda-intel").allowed());
    DemandDecision d = DecideDemandLoad(p, "floppy", "floppy");
    EXPECT_EQ(d.verdict, Verdict::kBlacklisted);
    EXPECT_EQ(d.reason, "blacklisted (kernel command line modprobe.blacklist=floppy)");
}

// --- helper arguments ------------------------------------------------------------------------

Result<HelperArgs> Parse(std::vector<std::string_view> args) { return ParseHelperArgs(args); }

TEST(HelperArgs, KernelFormAndModprobeVariants) {
    auto a = Parse({"-q", "--", "net-pf-17"});
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->alias, "net-pf-17");
    EXPECT_TRUE(a->quiet);
    a = Parse({"--", "pci:v00008086d000010D3sv*sd*bc02sc00i00"});
    ASSERT_TRUE(a);
    EXPECT_EQ(a->alias, "pci:v00008086d000010D3sv*sd*bc02sc00i00");
    EXPECT_FALSE(a->quiet);
    a = Parse({"-q", "-b", "fs-ext4"});
    ASSERT_TRUE(a);
    EXPECT_EQ(a->alias, "fs-ext4");
    a = Parse({"af_packet"});
    ASSERT_TRUE(a);
    EXPECT_EQ(a->alias, "af_packet");
    // After `--` even a dash-leading word is the name, not an option.
    a = Parse({"-q", "--", "-r"});
    ASSERT_TRUE(a);
    EXPECT_EQ(a->alias, "-r");
}

TEST(HelperArgs, GarbageIsRefused) {
    EXPECT_THAT(Parse({}).error().message(), HasSubstr("no module name or alias"));
    EXPECT_THAT(Parse({"-q", "--"}).error().message(), HasSubstr("no module name or alias"));
    EXPECT_THAT(Parse({"-r", "af_packet"}).error().message(), HasSubstr("unsupported option"));
    EXPECT_THAT(Parse({"--show-depends", "x"}).error().message(),
                HasSubstr("unsupported option \"--show-depends\""));
    EXPECT_THAT(Parse({"-q", "--", "a", "b"}).error().message(), HasSubstr("exactly one"));
    EXPECT_THAT(Parse({"-q", "--", "../../x"}).error().message(), HasSubstr("not a module name"));
    EXPECT_THAT(Parse({"-q", "--", "a=b"}).error().message(), HasSubstr("not a module name"));
    EXPECT_THAT(Parse({"-q", "--", ""}).error().message(), HasSubstr("not a module name"));
    EXPECT_THAT(Parse({"-q", "--", std::string_view("a\nb")}).error().message(),
                HasSubstr("not a module name"));
    EXPECT_EQ(Parse({"-x"}).error().code(), EINVAL);
}

// --- the autoload stage ----------------------------------------------------------------------

class AutoloadStageTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/peinit-autoload-stage-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        root_ = tmpl;
        fs::create_directories(root_ / "run/peinit");
        ctx_.paths.root = root_;
        // What the sealed tree is filled from: the image's wrapper, a stand-in for the running
        // peinit and its libraries, a key, a package and the module tree.
        fs::create_directories(root_ / "usr/lib/peinit/packages");
        fs::create_directories(root_ / "etc/peinit/keys");
        fs::create_directories(root_ / "lib/modules/9.9.9-test/kernel");
        fs::create_directories(root_ / "host");
        std::ofstream(root_ / "usr/lib/peinit/peinit-modprobe") << "static wrapper";
        std::ofstream(root_ / "host/peinit") << "peinit";
        std::ofstream(root_ / "host/libkmod.so.2") << "libkmod";
        std::ofstream(root_ / "host/ld.so") << "loader";
        std::ofstream(root_ / "etc/peinit/keys/image.pub") << "key";
        std::ofstream(root_ / "usr/lib/peinit/packages/image.pkg") << "not a real package";
        std::ofstream(root_ / "lib/modules/9.9.9-test/modules.dep") << "kernel/x.ko:\n";
        std::ofstream(root_ / "lib/modules/9.9.9-test/kernel/x.ko") << "module bytes";
        ctx_.kernel_release = "9.9.9-test";
        ctx_.helper_program = BootContext::HelperProgram{
            root_ / "host/peinit",
            {{root_ / "host/libkmod.so.2", "/lib/libkmod.so.2"},
             {root_ / "host/ld.so", "/lib64/ld-linux-x86-64.so.2"}}};
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(root_, ec);
    }
    std::string Record() const {
        std::string r = testing::ReadFileOrEmpty(root_ / "run/peinit/autoload.json");
        r.erase(std::remove_if(r.begin(), r.end(), [](char c) { return std::isspace(c); }),
                r.end());
        return r;
    }

    fs::path root_;
    FakeKernel kernel_;
    BootContext ctx_{kernel_};
    testing::CapturedLog log_{"autoload-test"};
};

TEST_F(AutoloadStageTest, EnabledInstallsPeinitsHelperAndReadsItBack) {
    ASSERT_TRUE(RunAutoload(ctx_));
    EXPECT_EQ(kernel_.Sysctl("kernel/modprobe"), "/run/peinit/ro/bin/peinit-modprobe");
    auto writes = kernel_.Calls(KernelOp::kWriteSysctl);
    ASSERT_EQ(writes.size(), 1u);
    EXPECT_EQ(writes[0].name, "kernel/modprobe");
    auto reads = kernel_.Calls(KernelOp::kReadSysctl);
    ASSERT_EQ(reads.size(), 1u);
    EXPECT_GT(reads[0].start, writes[0].end - std::chrono::nanoseconds(1));
    // No link in the writable root any more.
    EXPECT_FALSE(fs::exists(fs::symlink_status(root_ / "sbin/peinit-modprobe")));
    EXPECT_THAT(log_.str(), HasSubstr("autoload policy=enabled(default) "
                                      "helper=\"/run/peinit/ro/bin/peinit-modprobe\"(default)"));
    EXPECT_THAT(Record(), HasSubstr("\"helper\":\"/run/peinit/ro/bin/peinit-modprobe\""));
    EXPECT_THAT(Record(), HasSubstr("\"policy\":\"enabled\""));
    EXPECT_THAT(Record(), HasSubstr("\"read_back\":\"/run/peinit/ro/bin/peinit-modprobe\""));
}

// Issue 24 point 1: everything the helper executes and reads is copied to the sealed tree, which
// is remounted read-only (and read back) before kernel.modprobe names it.
TEST_F(AutoloadStageTest, SealedTreeIsFilledThenRemountedReadOnlyBeforeTheHelperIsNamed) {
    ASSERT_TRUE(RunAutoload(ctx_));
    const fs::path tree = root_ / "run/peinit/ro";
    EXPECT_EQ(ctx_.sealed_root, tree);
    EXPECT_EQ(testing::ReadFileOrEmpty(tree / "bin/peinit-modprobe"), "static wrapper");
    EXPECT_EQ(testing::ReadFileOrEmpty(tree / "bin/peinit"), "peinit");
    EXPECT_EQ(testing::ReadFileOrEmpty(tree / "lib/libkmod.so.2"), "libkmod");
    EXPECT_EQ(testing::ReadFileOrEmpty(tree / "lib64/ld-linux-x86-64.so.2"), "loader");
    EXPECT_EQ(testing::ReadFileOrEmpty(tree / "etc/peinit/keys/image.pub"), "key");
    EXPECT_EQ(testing::ReadFileOrEmpty(tree / "usr/lib/peinit/packages/image.pkg"),
              "not a real package");
    EXPECT_EQ(testing::ReadFileOrEmpty(tree / "lib/modules/9.9.9-test/modules.dep"),
              "kernel/x.ko:\n");
    // Module files are empty stubs: the bytes come only from packages.
    EXPECT_TRUE(fs::exists(tree / "lib/modules/9.9.9-test/kernel/x.ko"));
    EXPECT_EQ(fs::file_size(tree / "lib/modules/9.9.9-test/kernel/x.ko"), 0u);
    std::string policy = testing::ReadFileOrEmpty(tree / "policy.json");
    policy.erase(std::remove_if(policy.begin(), policy.end(), ::isspace), policy.end());
    EXPECT_THAT(policy, HasSubstr("\"modload_root\":\"/run/peinit/ro\""));
    EXPECT_TRUE(fs::exists(tree / "packages.index"));
    EXPECT_EQ(fs::status(tree / "policy.json").permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);

    auto mounts = kernel_.Calls(KernelOp::kMount);
    ASSERT_EQ(mounts.size(), 2u);
    EXPECT_EQ(mounts[0].name, tree.string());
    EXPECT_EQ(mounts[0].args,
              "tmpfs tmpfs flags=" + std::to_string(MS_NOSUID | MS_NODEV) + " mode=0755");
    EXPECT_EQ(mounts[1].name, tree.string());
    EXPECT_EQ(mounts[1].args, "  flags=" +
                                  std::to_string(MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV) +
                                  " ");
    auto writes = kernel_.Calls(KernelOp::kWriteSysctl);
    ASSERT_EQ(writes.size(), 1u);
    EXPECT_LT(mounts[1].end, writes[0].start + std::chrono::nanoseconds(1));
    EXPECT_THAT(log_.str(), HasSubstr("autoload: sealed tree /run/peinit/ro read-only"));
}

// A tree that cannot be built or sealed is never named: kernel.modprobe is emptied (and sealed
// empty), the error is recorded, hot-add has no tree; the boot goes on.
TEST_F(AutoloadStageTest, SealedTreeFailureFailsClosed) {
    for (int variant = 0; variant < 3; ++variant) {
        FakeKernel k;
        BootContext c(k);
        c.paths.root = root_;
        c.kernel_release = ctx_.kernel_release;
        c.helper_program = ctx_.helper_program;
        const std::string tree = (root_ / "run/peinit/ro").string();
        std::string expected;
        if (variant == 0) {
            fs::rename(root_ / "usr/lib/peinit/peinit-modprobe", root_ / "wrapper-aside");
            expected = "the image has no /usr/lib/peinit/peinit-modprobe";
        } else if (variant == 1) {
            k.SetOpError(KernelOp::kMount, tree, ENOSPC);
            expected = "sealed tree: ";
        } else {
            k.ThrowOn(KernelOp::kMount, tree);
            expected = "unexpected exception";
        }
        ASSERT_TRUE(RunAutoload(c)) << variant;
        if (variant == 0) fs::rename(root_ / "wrapper-aside", root_ / "usr/lib/peinit/peinit-modprobe");
        EXPECT_EQ(k.Sysctl("kernel/modprobe"), "") << variant;
        EXPECT_TRUE(k.IsModprobeSealed()) << variant;
        EXPECT_TRUE(c.sealed_root.empty()) << variant;
        EXPECT_THAT(Record(), HasSubstr("\"helper\":\"\"")) << variant;
        EXPECT_THAT(log_.str(), HasSubstr("demand loads fail closed")) << variant;
        EXPECT_THAT(log_.str(), HasSubstr(expected)) << variant;
    }
}

// Hives written for the old helper path name the sealed one.
TEST_F(AutoloadStageTest, LegacyHelperPathNamesTheSealedHelper) {
    ctx_.policy.modprobe = {std::string("/sbin/peinit-modprobe"), PolicySource::kHive};
    ASSERT_TRUE(RunAutoload(ctx_));
    EXPECT_EQ(kernel_.Sysctl("kernel/modprobe"), "/run/peinit/ro/bin/peinit-modprobe");
}

TEST_F(AutoloadStageTest, AllowListUsesTheHivesHelperPath) {
    ctx_.policy.autoload = {AutoLoadPolicy::kAllowList, PolicySource::kHive};
    ctx_.policy.autoload_allowed = {"af_packet"};
    ctx_.policy.modprobe = {std::string("/usr/lib/peinit/helper"), PolicySource::kHive};
    ASSERT_TRUE(RunAutoload(ctx_));
    EXPECT_EQ(kernel_.Sysctl("kernel/modprobe"), "/usr/lib/peinit/helper");
    EXPECT_FALSE(fs::exists(root_ / "sbin/peinit-modprobe"));
    EXPECT_THAT(log_.str(), HasSubstr("autoload policy=allow-list(hive) "
                                      "helper=\"/usr/lib/peinit/helper\"(hive) allowed=1"));
    EXPECT_THAT(Record(), HasSubstr("\"allowed\":[\"af_packet\"]"));
}

TEST_F(AutoloadStageTest, DisabledEmptiesTheHelperPath) {
    ctx_.policy.autoload = {AutoLoadPolicy::kDisabled, PolicySource::kCmdline};
    ctx_.policy.modprobe = {std::string("/usr/lib/peinit/helper"), PolicySource::kHive};
    ASSERT_TRUE(RunAutoload(ctx_));
    EXPECT_EQ(kernel_.Sysctl("kernel/modprobe"), "");
    auto writes = kernel_.Calls(KernelOp::kWriteSysctl);
    ASSERT_EQ(writes.size(), 1u);
    EXPECT_EQ(writes[0].args, "");  // "\n", stripped as the kernel's proc_dostring does
    EXPECT_THAT(log_.str(), HasSubstr("autoload policy=disabled(cmdline) helper=\"\"(cmdline)"));
    EXPECT_THAT(Record(), HasSubstr("\"helper\":\"\""));
    EXPECT_FALSE(fs::exists(root_ / "sbin/peinit-modprobe"));
}

TEST_F(AutoloadStageTest, WriteOrReadFailureIsAnError) {
    kernel_.SetOpError(KernelOp::kWriteSysctl, "kernel/modprobe", EPERM);
    auto r = RunAutoload(ctx_);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EPERM);
    EXPECT_THAT(r.error().message(), HasSubstr("write kernel.modprobe"));
    EXPECT_THAT(Record(), HasSubstr("\"error\":\"writekernel.modprobe"));

    FakeKernel k2;
    BootContext c2(k2);
    c2.paths.root = root_;
    k2.SetOpError(KernelOp::kReadSysctl, "kernel/modprobe", EIO);
    auto r2 = RunAutoload(c2);
    ASSERT_FALSE(r2);
    EXPECT_THAT(r2.error().message(), HasSubstr("read back kernel.modprobe"));
}

// the kernel's one-way gates, each read back with its QUERY op.
TEST_F(AutoloadStageTest, EnabledSealsTheHelperPath) {
    ASSERT_TRUE(RunAutoload(ctx_));
    EXPECT_TRUE(kernel_.IsModprobeSealed());
    EXPECT_FALSE(kernel_.IsAutoloadDisabled());
    auto lockdown = kernel_.Calls(KernelOp::kModuleLockdown);
    ASSERT_EQ(lockdown.size(), 2u);
    EXPECT_EQ(lockdown[0].args, "op=" + std::to_string(MODULE_LOCKDOWN_SEAL_MODPROBE) +
                                    " trigger=" + std::to_string(MODULE_LOCKDOWN_TRIGGER_BOOT));
    EXPECT_EQ(lockdown[1].args, "op=" + std::to_string(MODULE_LOCKDOWN_QUERY_MODPROBE) + " trigger=0");
    // After the helper path was written and read back.
    EXPECT_GT(lockdown[0].start, kernel_.Calls(KernelOp::kReadSysctl).back().end -
                                     std::chrono::nanoseconds(1));
    EXPECT_FALSE(kernel_.WriteSysctl("kernel/modprobe", "/tmp/evil"));
    EXPECT_EQ(kernel_.Sysctl("kernel/modprobe"), "/run/peinit/ro/bin/peinit-modprobe");
    EXPECT_THAT(Record(), HasSubstr("\"gate\":\"modprobe-sealed\""));
    EXPECT_THAT(log_.str(), HasSubstr("gate=modprobe-sealed"));
}

TEST_F(AutoloadStageTest, DisabledClosesTheKernelGate) {
    ctx_.policy.autoload = {AutoLoadPolicy::kDisabled, PolicySource::kHive};
    ASSERT_TRUE(RunAutoload(ctx_));
    EXPECT_TRUE(kernel_.IsAutoloadDisabled());
    EXPECT_FALSE(kernel_.IsModprobeSealed());
    auto lockdown = kernel_.Calls(KernelOp::kModuleLockdown);
    ASSERT_EQ(lockdown.size(), 2u);
    EXPECT_EQ(lockdown[0].args, "op=" + std::to_string(MODULE_LOCKDOWN_DISABLE_AUTOLOAD) +
                                    " trigger=" + std::to_string(MODULE_LOCKDOWN_TRIGGER_REGISTRY));
    EXPECT_EQ(kernel_.Sysctl("kernel/modprobe"), "");
    EXPECT_THAT(Record(), HasSubstr("\"gate\":\"autoload-disabled\""));
}

// With root= the handover stage sets the real root's helper, then seals it.
TEST_F(AutoloadStageTest, WithARealRootTheSealWaitsForTheHandover) {
    ctx_.cmdline.root = "/dev/vda";
    ASSERT_TRUE(RunAutoload(ctx_));
    EXPECT_FALSE(kernel_.IsModprobeSealed());
    EXPECT_TRUE(kernel_.Calls(KernelOp::kModuleLockdown).empty());
    EXPECT_THAT(Record(), HasSubstr("\"gate\":\"handover\""));
}

// A kernel without the gates: the policy rests on the helper path alone, which is said.
TEST_F(AutoloadStageTest, WithoutKernelGatesTheHelperPathAloneEnforces) {
    for (bool stock : {true, false}) {
        FakeKernel k;
        if (stock) {
            k.SetUnpatched(true);
        } else {
            k.SetNoAutoloadGates(true);
        }
        BootContext c(k);
        c.paths.root = root_;
        c.policy.autoload = {AutoLoadPolicy::kDisabled, PolicySource::kHive};
        ASSERT_TRUE(RunAutoload(c));
        EXPECT_EQ(k.Sysctl("kernel/modprobe"), "");  // as before: empty helper path
        EXPECT_FALSE(k.IsAutoloadDisabled());
        EXPECT_THAT(Record(), HasSubstr("\"gate\":\"none\""));
        EXPECT_THAT(log_.str(), HasSubstr("is enforced only by the helper path"));
    }
}

TEST_F(AutoloadStageTest, GateRefusedIsAnError) {
    kernel_.SetPrivileged(false);
    auto r = RunAutoload(ctx_);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), EPERM);
    EXPECT_THAT(r.error().message(), HasSubstr("module_lockdown(SEAL_MODPROBE)"));
    EXPECT_THAT(Record(), HasSubstr("module_lockdown(SEAL_MODPROBE)"));
}

TEST(AutoloadHelperPath, FollowsThePolicy) {
    EffectivePolicy p;
    EXPECT_EQ(HelperPathFor(p), "/run/peinit/ro/bin/peinit-modprobe");
    p.modprobe.value = "/sbin/peinit-modprobe";
    EXPECT_EQ(HelperPathFor(p), "/run/peinit/ro/bin/peinit-modprobe");
    p.modprobe.value = "/x";
    EXPECT_EQ(HelperPathFor(p), "/x");
    p.autoload.value = AutoLoadPolicy::kDisabled;
    EXPECT_EQ(HelperPathFor(p), "");
}

// --- the helper end to end -------------------------------------------------------------------

class HelperTest : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_NO_FATAL_FAILURE(root_.Make()); }
    // The hive is only trusted when root-owned.
    void RequireRoot() {
        if (geteuid() != 0) GTEST_SKIP() << "a trusted hive must be root-owned";
    }
    int Run(std::vector<std::string> args) {
        log_.clear();
        return RunDemandLoadHelper(args, root_.Paths(), testing::kFixtureKver, kernel_, log_);
    }
    int Demand(const std::string& alias) { return Run({"-q", "--", alias}); }
    std::string Log() const {
        std::string out;
        for (const auto& l : log_) out += std::to_string(l.priority) + " " + l.text + "\n";
        return out;
    }
    std::vector<std::string> Loads() const { return kernel_.CallNames(KernelOp::kInitModule); }

    testing::DemandRoot root_;
    FakeKernel kernel_;
    std::vector<HelperLogLine> log_;
};

TEST_F(HelperTest, EnabledByDefaultLoadsLikeModprobeDependenciesFirst) {
    EXPECT_EQ(Demand("net-pf-17"), 0) << Log();
    EXPECT_THAT(Loads(), ElementsAre("af_packet"));
    EXPECT_THAT(Log(), HasSubstr("6 loaded af_packet for net-pf-17 from all.pkg"));
    EXPECT_EQ(Demand("algif-hash"), 0) << Log();
    EXPECT_THAT(Loads(), ElementsAre("af_packet", "af_alg", "algif_hash"));
    // A second request for a loaded module: EEXIST counts as loaded.
    EXPECT_EQ(Demand("net-pf-17"), 0) << Log();
}

TEST_F(HelperTest, AliasWithSeveralModulesLoadsEach) {
    EXPECT_EQ(Demand("dual-alias"), 0) << Log();
    EXPECT_THAT(Loads(), ElementsAre("dual_a", "dual_b"));
}

TEST_F(HelperTest, UnknownAliasIsQuietFailure) {
    EXPECT_EQ(Demand("net-pf-99999"), 1);
    EXPECT_THAT(log_, IsEmpty());
    EXPECT_THAT(Loads(), IsEmpty());
}

TEST_F(HelperTest, BuiltinIsAlreadyLive) {
    EXPECT_EQ(Demand("net-pf-99"), 0) << Log();
    EXPECT_THAT(Loads(), IsEmpty());
}

TEST_F(HelperTest, GarbageArgumentsExitTwo) {
    EXPECT_EQ(Run({}), 2);
    EXPECT_THAT(Log(), HasSubstr("usage: no module name or alias given"));
    EXPECT_EQ(Run({"-q", "--", "a", "b"}), 2);
    EXPECT_EQ(Run({"--remove", "af_packet"}), 2);
    EXPECT_THAT(Loads(), IsEmpty());
}

TEST_F(HelperTest, ModprobeDDenialsApply) {
    EXPECT_EQ(Demand("pci:v0000DEADd00001234sv00000000sd00000000bc02sc00i00"), 1);
    EXPECT_THAT(Log(), HasSubstr("4 refused demand load of "
                                 "pci:v0000DEADd00001234sv00000000sd00000000bc02sc00i00 (module "
                                 "bad_drv): blacklisted (/etc/modprobe.d/autoload.conf:2 "
                                 "blacklist bad_drv)"));
    // A dependency denied by `install bl_dep /bin/false`: the module cannot load.
    EXPECT_EQ(Demand("pci:v0000BEEFd00000001sv00000000sd00000000bc02sc00i00"), 1);
    EXPECT_THAT(Log(), HasSubstr("module bl_dep_user skipped"));
    EXPECT_THAT(Loads(), IsEmpty());
}

TEST_F(HelperTest, OnlyFromVerifiedPackages) {
    testing::DemandRoot partial;
    ASSERT_NO_FATAL_FAILURE(partial.Make({"af_alg"}));
    std::vector<HelperLogLine> log;
    EXPECT_EQ(RunDemandLoadHelper({"-q", "--", "net-pf-17"}, partial.Paths(), testing::kFixtureKver,
                                  kernel_, log),
              1);
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].text,
              "demand load of net-pf-17: module af_packet failed: not in a verified "
              "package");
    EXPECT_THAT(Loads(), IsEmpty());
}

TEST_F(HelperTest, KernelErrorIsReported) {
    kernel_.SetModuleError("af_packet", EKEYREJECTED);
    EXPECT_EQ(Demand("net-pf-17"), 1);
    EXPECT_THAT(Log(), HasSubstr("module af_packet failed"));
    EXPECT_THAT(Log(), HasSubstr("EKEYREJECTED"));
}

TEST_F(HelperTest, AllowListLoadsOnlyListedModules) {
    RequireRoot();
    root_.SetHive(
        "AutoLoadPolicy = \"allow-list\"\nAutoLoadAllowed = [\"af_packet\", "
        "\"algif_hash\"]\n");
    EXPECT_EQ(Demand("net-pf-17"), 0) << Log();
    EXPECT_EQ(Demand("net-pf-38"), 1);
    EXPECT_THAT(Log(), HasSubstr("4 refused demand load of net-pf-38 (module af_alg): not in "
                                 "AutoLoadAllowed"));
    // The allow-list names resolved modules; their dependencies come with them.
    EXPECT_EQ(Demand("algif-hash"), 0) << Log();
    EXPECT_THAT(Loads(), ElementsAre("af_packet", "af_alg", "algif_hash"));
}

// A soft dependency (softdep) is a module nobody listed: the allow-list decides on it like on
// the module asked for, which still loads without it; hard dependencies come with the module.
TEST_F(HelperTest, AllowListDecidesOnSoftDependenciesToo) {
    RequireRoot();
    std::ofstream(root_.root() / "etc/modprobe.d/soft.conf") << "softdep af_packet post: af_alg\n";
    root_.SetHive("AutoLoadPolicy = \"allow-list\"\nAutoLoadAllowed = [\"af_packet\"]\n");
    EXPECT_EQ(Demand("net-pf-17"), 0) << Log();
    EXPECT_THAT(Loads(), ElementsAre("af_packet"));
    EXPECT_THAT(Log(), HasSubstr("4 refused soft dependency af_alg of net-pf-17: not in "
                                 "AutoLoadAllowed"));
    // Unloaded again (kmod skips the soft dependencies of a module already loaded), then asked
    // for with both allowed: the soft dependency follows.
    ASSERT_TRUE(kernel_.DeleteModule("af_packet", 0));
    root_.SetHive(
        "AutoLoadPolicy = \"allow-list\"\nAutoLoadAllowed = [\"af_packet\", \"af_alg\"]\n");
    EXPECT_EQ(Demand("net-pf-17"), 0) << Log();
    EXPECT_THAT(Loads(), ElementsAre("af_packet", "af_packet", "af_alg"));
}

TEST_F(HelperTest, DisabledRefusesEverything) {
    RequireRoot();
    root_.SetHive("AutoLoadPolicy = \"disabled\"\n");
    EXPECT_EQ(Demand("net-pf-17"), 1);
    EXPECT_THAT(Log(), HasSubstr("refused demand load of net-pf-17 (module af_packet): "
                                 "AutoLoadPolicy is disabled"));
    EXPECT_THAT(Loads(), IsEmpty());
}

// SigningPolicy=enforce holds for demand loads too: when the kernel does not enforce
// signatures, the helper loads nothing and says why; once it does, the same request loads.
TEST_F(HelperTest, EnforceThatIsNotInEffectLoadsNothing) {
    RequireRoot();
    root_.SetHive("SigningPolicy = \"enforce\"\n");
    EXPECT_EQ(Demand("net-pf-17"), 1);
    EXPECT_THAT(Log(), HasSubstr("SigningPolicy=enforce is not in effect "
                                 "(module.sig_enforce reads N): loading nothing"));
    EXPECT_THAT(Loads(), IsEmpty());
    ASSERT_TRUE(kernel_.WriteSysfs(kSigEnforceSysfs, "1"));
    EXPECT_EQ(Demand("net-pf-17"), 0) << Log();
    EXPECT_THAT(Loads(), ElementsAre("af_packet"));
}

TEST_F(HelperTest, BlacklistAppliesWhenEnabled) {
    RequireRoot();
    root_.SetHive("AutoLoadPolicy = \"enabled\"\nBlacklist = [\"af_packet\"]\n");
    EXPECT_EQ(Demand("net-pf-17"), 1);
    EXPECT_THAT(Log(), HasSubstr("refused demand load of net-pf-17 (module af_packet): "
                                 "blacklisted (hive Machine\\System\\Modules\\Blacklist)"));
    root_.SetCmdline("modprobe.blacklist=af_alg");
    EXPECT_EQ(Demand("net-pf-38"), 1);
    EXPECT_THAT(Log(), HasSubstr("(module af_alg): blacklisted (kernel command line "
                                 "modprobe.blacklist=af_alg)"));
    EXPECT_THAT(Loads(), IsEmpty());
}

TEST_F(HelperTest, CommandLineCannotLoosenTheHive) {
    RequireRoot();
    root_.SetHive("AutoLoadPolicy = \"allow-list\"\nAutoLoadAllowed = [\"af_packet\"]\n");
    root_.SetCmdline("peinit.autoload=enabled");
    EXPECT_EQ(Demand("net-pf-38"), 1);
    EXPECT_THAT(Log(), HasSubstr("not in AutoLoadAllowed"));
    root_.SetCmdline("peinit.autoload=disabled");  // but may tighten it
    EXPECT_EQ(Demand("net-pf-17"), 1);
    EXPECT_THAT(Log(), HasSubstr("AutoLoadPolicy is disabled"));
    EXPECT_THAT(Loads(), IsEmpty());
}

TEST_F(HelperTest, MalformedHiveFailsClosed) {
    root_.SetHive("LockAfterBoot = \"maybe\"\n");
    EXPECT_EQ(Demand("net-pf-17"), 1);
    EXPECT_THAT(Log(), HasSubstr("AutoLoadPolicy is disabled"));
    EXPECT_THAT(Loads(), IsEmpty());
}

// the helper enforces the record PID 1 wrote; without a usable one it refuses (it never
// falls back to a looser policy computed from whatever files it finds).
TEST_F(HelperTest, MissingOrMalformedPolicyRecordFailsClosed) {
    fs::remove(root_.root() / "run/peinit/ro/policy.json");
    EXPECT_EQ(Demand("net-pf-17"), 1);
    EXPECT_THAT(Log(), HasSubstr("refused demand load of net-pf-17: no usable policy record"));
    EXPECT_THAT(Log(), HasSubstr("failing closed as AutoLoadPolicy=disabled"));
    std::ofstream(root_.root() / "run/peinit/ro/policy.json") << "{\"version\": 1, \"autoload\": 3}";
    EXPECT_EQ(Demand("net-pf-17"), 1);
    EXPECT_THAT(Log(), HasSubstr("no usable policy record (/run/peinit/ro/policy.json: "));
    EXPECT_THAT(Loads(), IsEmpty());
}

// The record, not the hive, is the policy: a hive changed after PID 1 read it has no effect.
TEST_F(HelperTest, EnforcesTheRecordNotTheHive) {
    RequireRoot();
    root_.SetHive("AutoLoadPolicy = \"disabled\"\n");
    std::ofstream(root_.root() / "etc/peinit/hive.toml") << "";  // hive emptied afterwards
    EXPECT_EQ(Demand("net-pf-17"), 1);
    EXPECT_THAT(Log(), HasSubstr("AutoLoadPolicy is disabled"));
    EXPECT_THAT(Loads(), IsEmpty());
}

// After the handoff the record's modload_root names the tree PID 1 handed over: the helper
// resolves and loads from it, not from the (real) root's own /lib/modules.
TEST_F(HelperTest, LoadsFromTheRecordedModloadRoot) {
    fs::path handed = root_.root() / "run/peinit/modload";
    fs::create_directories(handed);
    for (const char* d : {"lib", "usr", "etc"}) {
        fs::rename(root_.root() / d, handed / d);
    }
    EXPECT_EQ(Demand("net-pf-17"), 1);  // "/" has no module tree any more
    root_.RecordPolicy("/run/peinit/modload");
    EXPECT_EQ(Demand("net-pf-17"), 0) << Log();
    EXPECT_THAT(Loads(), ElementsAre("af_packet"));
}

TEST_F(HelperTest, MissingTreeIsAnError) {
    EXPECT_EQ(
        RunDemandLoadHelper({"-q", "--", "net-pf-17"}, root_.Paths(), "9.9.9-none", kernel_, log_),
        1);
    EXPECT_THAT(Log(), HasSubstr("3 demand load of net-pf-17 failed: module tree"));
}

}  // namespace
}  // namespace peinit
