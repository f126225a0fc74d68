#include "peinit/core/hive.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "peinit/sys/config_files.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const FileTrust kRootOwned{0, 0, 0644};

std::vector<std::string> Texts(const ConfigErrors& errors) {
    std::vector<std::string> out;
    for (const auto& e : errors) out.push_back(e.ToString());
    return out;
}

Hive Parse(const std::string& text, const FileTrust* trust = &kRootOwned) {
    return ParseHive("hive.toml", text, trust);
}

// A hive under the canonical modules key.
Hive Modules(const std::string& values) { return Parse("['Machine\\System\\Modules']\n" + values); }

void ExpectHardenedFallback(const Hive& hive) {
    EXPECT_EQ(hive.state, HiveState::kFallback);
    EXPECT_TRUE(hive.LockAfterBoot());
    EXPECT_EQ(hive.AutoLoad(), AutoLoadPolicy::kDisabled);
    EXPECT_FALSE(hive.errors.empty());
    // Nothing from a rejected hive is half-applied.
    EXPECT_THAT(hive.Blacklist(), IsEmpty());
    EXPECT_THAT(hive.AutoLoadAllowed(), IsEmpty());
    EXPECT_EQ(hive.Signing(), SigningPolicy::kWarn);
    EXPECT_FALSE(hive.Modprobe());
}

std::string Fixture(const std::string& name) {
    return std::string(PEINIT_FIXTURES_DIR) + "/hives/" + name;
}

std::string ReadFixture(const std::string& name) {
    std::ifstream in(Fixture(name));
    return std::string(std::istreambuf_iterator<char>(in), {});
}

// --- values and defaults -----------------------------------------------------------------------

TEST(Hive, DefaultsWhenAbsent) {
    Hive hive = AbsentHive();
    EXPECT_EQ(hive.state, HiveState::kAbsent);
    EXPECT_FALSE(hive.LockAfterBoot());
    EXPECT_EQ(hive.AutoLoad(), AutoLoadPolicy::kEnabled);
    EXPECT_EQ(hive.Signing(), SigningPolicy::kWarn);
    EXPECT_THAT(hive.Blacklist(), IsEmpty());
    EXPECT_FALSE(hive.Modprobe());
    EXPECT_EQ(hive.ModuleWorkers(3), 3);
    EXPECT_EQ(hive.FallbackReason(), "");
}

TEST(Hive, EmptyHiveIsValidDefaults) {
    Hive hive = Parse("");
    EXPECT_EQ(hive.state, HiveState::kLoaded);
    EXPECT_FALSE(hive.LockAfterBoot());
    EXPECT_EQ(hive.AutoLoad(), AutoLoadPolicy::kEnabled);
}

TEST(Hive, CanonicalFixture) {
    Hive hive = ParseHive("valid.toml", ReadFixture("valid.toml"), &kRootOwned);
    EXPECT_THAT(Texts(hive.errors), IsEmpty());
    EXPECT_EQ(hive.state, HiveState::kLoaded);
    EXPECT_TRUE(hive.LockAfterBoot());
    EXPECT_EQ(hive.AutoLoad(), AutoLoadPolicy::kAllowList);
    EXPECT_THAT(hive.AutoLoadAllowed(), ElementsAre("e1000e", "snd_hda_intel"));
    // Array and subkey forms merge.
    EXPECT_THAT(hive.Blacklist(), ElementsAre("floppy", "pcspkr"));
    EXPECT_EQ(hive.Signing(), SigningPolicy::kEnforce);
    EXPECT_EQ(hive.Modprobe(), "/sbin/peinit-modprobe");
    EXPECT_EQ(hive.ModuleWorkers(1), 4);
}

TEST(Hive, CaseInsensitiveNestedTablesAndSubkeyForm) {
    Hive hive = ParseHive("nested.toml", ReadFixture("nested.toml"), &kRootOwned);
    EXPECT_THAT(Texts(hive.errors), IsEmpty());
    EXPECT_TRUE(hive.LockAfterBoot());
    EXPECT_EQ(hive.AutoLoad(), AutoLoadPolicy::kDisabled);
    EXPECT_THAT(hive.AutoLoadAllowed(), ElementsAre("fs_ext4", "virtio_net"));
    EXPECT_EQ(hive.Modprobe(), "/usr/sbin/helper");
}

TEST(Hive, LeadingBackslashAndMixedCasePath) {
    Hive hive = Parse("['\\MACHINE\\system\\Modules']\nlockAFTERboot = \"TRUE\"\n");
    EXPECT_THAT(Texts(hive.errors), IsEmpty());
    EXPECT_TRUE(hive.LockAfterBoot());
}

TEST(Hive, LockAfterBootForms) {
    EXPECT_TRUE(Modules("LockAfterBoot = true\n").LockAfterBoot());
    EXPECT_FALSE(Modules("LockAfterBoot = false\n").LockAfterBoot());
    EXPECT_TRUE(Modules("LockAfterBoot = 1\n").LockAfterBoot());
    EXPECT_FALSE(Modules("LockAfterBoot = 0\n").LockAfterBoot());
    EXPECT_TRUE(Modules("LockAfterBoot = \"true\"\n").LockAfterBoot());
    Hive off = Modules("LockAfterBoot = \"False\"\n");
    EXPECT_EQ(off.state, HiveState::kLoaded);
    EXPECT_FALSE(off.LockAfterBoot());
}

TEST(Hive, KeysOutsideModulesAreNotOurs) {
    Hive hive = Parse(
        "['Machine\\System\\Network']\nAnything = [1, 2]\n"
        "['Machine\\System\\Kernel']\nHostname = 7\n"
        "['User\\Foo']\nBar = true\n");
    EXPECT_THAT(Texts(hive.errors), IsEmpty());
    EXPECT_EQ(hive.state, HiveState::kLoaded);
}

// --- malformed or untrusted -> hardened fallback -----------------------------------------

TEST(HiveFallback, BadTypes) {
    Hive hive = Modules(
        "LockAfterBoot = 1.0\nAutoLoadPolicy = 1\nAutoLoadAllowed = \"e1000e\"\n"
        "Blacklist = [1]\nSigningPolicy = true\nModuleWorkers = \"4\"\n");
    ExpectHardenedFallback(hive);
    EXPECT_THAT(Texts(hive.errors),
                ElementsAre("hive.toml:2: LockAfterBoot must be a boolean, 0/1 or "
                            "\"true\"/\"false\", not float",
                            "hive.toml:3: AutoLoadPolicy must be a string, not integer",
                            "hive.toml:4: AutoLoadAllowed must be an array of module names, not "
                            "string",
                            "hive.toml:5: Blacklist entries must be strings, not integer",
                            "hive.toml:6: SigningPolicy must be a string, not boolean",
                            "hive.toml:7: ModuleWorkers must be an integer, not string"));
}

TEST(HiveFallback, UnknownValues) {
    Hive hive = Modules(
        "LockAfterBoot = 2\nAutoLoadPolicy = \"sometimes\"\nSigningPolicy = \"strict\"\n"
        "ModuleWorkers = 0\nBlacklist = [\"bad/name\"]\n");
    ExpectHardenedFallback(hive);
    EXPECT_THAT(Texts(hive.errors),
                ElementsAre("hive.toml:2: LockAfterBoot: unknown value 2 (expected 0 or 1)",
                            "hive.toml:3: AutoLoadPolicy: unknown value \"sometimes\" (expected "
                            "enabled, allow-list or disabled)",
                            "hive.toml:4: SigningPolicy: unknown value \"strict\" (expected warn "
                            "or enforce)",
                            "hive.toml:5: ModuleWorkers: 0 is out of range (1..256)",
                            "hive.toml:6: invalid module name \"bad/name\" in Blacklist"));
    EXPECT_EQ(Texts(Modules("LockAfterBoot = \"yes\"\n").errors),
              std::vector<std::string>{"hive.toml:2: LockAfterBoot: unknown value \"yes\" "
                                       "(expected \"true\" or \"false\")"});
}

TEST(HiveFallback, UnknownKeysAndValuesUnderModules) {
    Hive hive = Parse(
        "['Machine\\System\\Modules']\nLockAfterBot = true\n"
        "['Machine\\System\\Modules\\Extra']\nX = 1\n"
        "['Machine\\System\\Modules\\Blacklist\\Deeper']\nY = 1\n");
    ExpectHardenedFallback(hive);
    EXPECT_THAT(Texts(hive.errors),
                ElementsAre("hive.toml:2: unknown value \"LockAfterBot\" under "
                            "Machine\\System\\Modules",
                            "hive.toml:3: unknown key \"Machine\\System\\Modules\\Extra\"",
                            "hive.toml:5: unknown key "
                            "\"Machine\\System\\Modules\\Blacklist\\Deeper\""));
}

TEST(HiveFallback, StructuralErrors) {
    Hive hive = Parse(
        "Stray = 1\n"
        "['Machine\\\\System']\nA = 1\n"
        "['Machine\\System\\Modules']\nLockAfterBoot = true\n"
        "['machine\\system\\modules']\nlockafterboot = false\n"
        "['Machine\\System\\Modules\\Blacklist']\nx = [1]\n");
    ExpectHardenedFallback(hive);
    EXPECT_THAT(Texts(hive.errors),
                ElementsAre("hive.toml:1: value \"Stray\" is outside any registry key",
                            "hive.toml:2: invalid registry key name \"Machine\\\\System\"",
                            // The two spellings are one key: the value is defined twice.
                            "hive.toml:7: duplicate value \"lockafterboot\" in "
                            "Machine\\System\\Modules (also at line 5)",
                            "hive.toml:9: x must be a string, integer or boolean (the name is "
                            "the entry), not array"));
}

TEST(HiveFallback, ModprobePath) {
    auto errors = [](const std::string& value) {
        return Texts(Parse("['Machine\\System\\Kernel']\nModprobe = " + value + "\n").errors);
    };
    EXPECT_THAT(errors("\"/sbin/x\""), IsEmpty());
    const std::string suffix = " is not an absolute path of at most 255 characters without spaces";
    EXPECT_THAT(errors("\"\""), ElementsAre("hive.toml:2: Modprobe: \"\"" + suffix));
    EXPECT_THAT(errors("\"sbin/x\""), ElementsAre("hive.toml:2: Modprobe: \"sbin/x\"" + suffix));
    EXPECT_THAT(errors("\"/a b\""), ElementsAre("hive.toml:2: Modprobe: \"/a b\"" + suffix));
    std::string long_path = "/" + std::string(255, 'x');
    EXPECT_THAT(errors("\"" + long_path + "\""),
                ElementsAre("hive.toml:2: Modprobe: \"" + long_path + "\"" + suffix));
    EXPECT_THAT(errors("[\"/x\"]"),
                ElementsAre("hive.toml:2: Modprobe must be a string, not array"));
}

TEST(HiveFallback, BadToml) {
    Hive hive = ParseHive("broken.toml", ReadFixture("broken.toml"), &kRootOwned);
    ExpectHardenedFallback(hive);
    EXPECT_THAT(Texts(hive.errors),
                ElementsAre("broken.toml:2: Error while parsing key-value pair: expected value, "
                            "saw '\\n'"));
    EXPECT_EQ(hive.FallbackReason(), hive.errors[0].ToString());
}

TEST(HiveFallback, UntrustedOwnerAndMode) {
    const std::string text = "['Machine\\System\\Modules']\nLockAfterBoot = false\n";
    FileTrust world{0, 0, 0666};
    Hive w = Parse(text, &world);
    ExpectHardenedFallback(w);
    EXPECT_THAT(Texts(w.errors),
                ElementsAre("hive.toml: untrusted: group- or world-writable (mode 0666)"));

    FileTrust group{0, 0, 0664};
    EXPECT_THAT(Texts(Parse(text, &group).errors),
                ElementsAre("hive.toml: untrusted: group- or world-writable (mode 0664)"));

    FileTrust owner{1000, 0, 0644};
    Hive o = Parse(text, &owner);
    ExpectHardenedFallback(o);
    EXPECT_THAT(Texts(o.errors), ElementsAre("hive.toml: untrusted: owned by uid 1000, not root"));

    // Untrusted and malformed: every reason is kept.
    FileTrust both{5, 5, 0602};
    EXPECT_THAT(Texts(Parse("x = \n", &both).errors),
                ElementsAre("hive.toml: untrusted: owned by uid 5, not root",
                            "hive.toml: untrusted: group- or world-writable (mode 0602)",
                            "hive.toml:1: Error while parsing key-value pair: expected value, saw "
                            "'\\n'"));

    // No trust check (offline check of a source tree).
    EXPECT_EQ(Parse(text, nullptr).state, HiveState::kLoaded);
    // Read-only for everyone but root is fine.
    FileTrust ro{0, 0, 0400};
    EXPECT_EQ(Parse(text, &ro).state, HiveState::kLoaded);
}

// --- loading from disk -------------------------------------------------------------------------

class HiveFiles : public ::testing::Test {
  protected:
    void SetUp() override {
        char templ[] = "/tmp/peinit-hive-XXXXXX";
        dir_ = ::mkdtemp(templ);
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    std::string Write(const std::string& name, const std::string& text, mode_t mode) {
        std::string p = dir_ + "/" + name;
        std::ofstream(p) << text;
        ::chmod(p.c_str(), mode);
        return p;
    }
    std::string dir_;
};

TEST_F(HiveFiles, AbsentFileMeansDefaults) {
    Hive hive = LoadHive(dir_ + "/hive.toml");
    EXPECT_EQ(hive.state, HiveState::kAbsent);
    EXPECT_FALSE(hive.LockAfterBoot());
}

TEST_F(HiveFiles, TrustComesFromTheFile) {
    std::string p =
        Write("hive.toml", "['Machine\\System\\Modules']\nLockAfterBoot = false\n", 0644);
    if (::geteuid() == 0) {
        EXPECT_EQ(LoadHive(p).state, HiveState::kLoaded);
    } else {
        EXPECT_EQ(LoadHive(p).state, HiveState::kFallback);  // not root-owned
    }
    EXPECT_EQ(LoadHive(p, {.check_trust = false}).state, HiveState::kLoaded);
    ::chmod(p.c_str(), 0666);
    Hive hive = LoadHive(p);
    ExpectHardenedFallback(hive);
    EXPECT_THAT(Texts(hive.errors).back(),
                ::testing::HasSubstr("untrusted: group- or world-writable (mode 0666)"));
}

TEST_F(HiveFiles, UnreadableSymlinkAndDirectoryFallBack) {
    std::string target = Write("real.toml", "", 0644);
    std::string link = dir_ + "/link.toml";
    ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
    Hive via_link = LoadHive(link);
    ExpectHardenedFallback(via_link);
    EXPECT_THAT(Texts(via_link.errors),
                ElementsAre(link + ": cannot read: Too many levels of symbolic links"));

    fs::create_directory(dir_ + "/dir.toml");
    Hive dir = LoadHive(dir_ + "/dir.toml");
    ExpectHardenedFallback(dir);
    EXPECT_THAT(Texts(dir.errors), ElementsAre(dir_ + "/dir.toml: cannot read: Is a directory"));
}

// The strict contract of the same loader (peinit-image): every problem is an error naming the
// file (and line), an absent file included; a symlink is followed only when asked.
TEST_F(HiveFiles, StrictLoadMakesEveryProblemAnError) {
    auto absent = LoadHiveOrError(dir_ + "/hive.toml", {.check_trust = false});
    ASSERT_FALSE(absent);
    EXPECT_EQ(absent.error().message(), dir_ + "/hive.toml: cannot read: No such file or directory");

    std::string bad = Write("bad.toml", "['Machine\\System\\Modules']\nLockAfterBoot = 3\n", 0644);
    auto malformed = LoadHiveOrError(bad, {.check_trust = false});
    ASSERT_FALSE(malformed);
    EXPECT_THAT(malformed.error().message(), ::testing::StartsWith(bad + ":2"));

    std::string good = Write("good.toml", "['Machine\\System\\Modules']\nLockAfterBoot = true\n", 0644);
    std::string link = dir_ + "/link.toml";
    ASSERT_EQ(::symlink(good.c_str(), link.c_str()), 0);
    EXPECT_FALSE(LoadHiveOrError(link, {.check_trust = false}));
    auto followed = LoadHiveOrError(link, {.check_trust = false, .follow_symlinks = true});
    ASSERT_TRUE(followed) << followed.error().message();
    EXPECT_TRUE(followed->LockAfterBoot());
}

// --- the command line only tightens -------------------------------------------------------

TEST(EffectivePolicy, DefaultsWithoutHiveOrCmdline) {
    EffectivePolicy p = ComputeEffectivePolicy(AbsentHive(), ParseCmdline(""));
    EXPECT_FALSE(p.lock_after_boot.value);
    EXPECT_EQ(p.lock_after_boot.source, PolicySource::kDefault);
    EXPECT_EQ(p.autoload.value, AutoLoadPolicy::kEnabled);
    EXPECT_EQ(p.autoload.source, PolicySource::kDefault);
    EXPECT_EQ(p.signing.value, SigningPolicy::kWarn);
    EXPECT_FALSE(p.modprobe.value);
    EXPECT_FALSE(p.workers.value);
    EXPECT_THAT(p.ignored, IsEmpty());
}

TEST(EffectivePolicy, CmdlineLockTurnsLockOn) {
    EffectivePolicy p =
        ComputeEffectivePolicy(Modules("LockAfterBoot = false\n"), ParseCmdline("peinit.lock=1"));
    EXPECT_TRUE(p.lock_after_boot.value);
    EXPECT_EQ(p.lock_after_boot.source, PolicySource::kCmdline);
}

TEST(EffectivePolicy, CmdlineCannotUnlock) {
    EffectivePolicy p =
        ComputeEffectivePolicy(Modules("LockAfterBoot = true\n"), ParseCmdline("peinit.lock=0"));
    EXPECT_TRUE(p.lock_after_boot.value);
    EXPECT_EQ(p.lock_after_boot.source, PolicySource::kHive);
    EXPECT_THAT(p.ignored, ElementsAre("peinit.lock=0 ignored: LockAfterBoot=true from the hive "
                                       "cannot be loosened"));
    // Nor can it unlock the fallback.
    EffectivePolicy f = ComputeEffectivePolicy(
        Modules("LockAfterBoot = 7\n"), ParseCmdline("peinit.lock=0 peinit.autoload=enabled"));
    EXPECT_TRUE(f.lock_after_boot.value);
    EXPECT_EQ(f.lock_after_boot.source, PolicySource::kFallback);
    EXPECT_EQ(f.autoload.value, AutoLoadPolicy::kDisabled);
    EXPECT_EQ(f.autoload.source, PolicySource::kFallback);
    EXPECT_EQ(f.hive_state, HiveState::kFallback);
    EXPECT_EQ(f.ignored.size(), 2u);
}

TEST(EffectivePolicy, AutoloadOnlyMovesTowardsDisabled) {
    struct Case {
        const char* hive;
        const char* cmdline;
        AutoLoadPolicy want;
        PolicySource source;
        size_t ignored;
    } cases[] = {
        {"enabled", "peinit.autoload=allow-list", AutoLoadPolicy::kAllowList,
         PolicySource::kCmdline, 0},
        {"enabled", "peinit.autoload=disabled", AutoLoadPolicy::kDisabled, PolicySource::kCmdline,
         0},
        {"allow-list", "peinit.autoload=disabled", AutoLoadPolicy::kDisabled,
         PolicySource::kCmdline, 0},
        {"allow-list", "peinit.autoload=enabled", AutoLoadPolicy::kAllowList, PolicySource::kHive,
         1},
        {"disabled", "peinit.autoload=allow-list", AutoLoadPolicy::kDisabled, PolicySource::kHive,
         1},
        {"disabled", "peinit.autoload=disabled", AutoLoadPolicy::kDisabled, PolicySource::kHive, 0},
    };
    for (const Case& c : cases) {
        EffectivePolicy p = ComputeEffectivePolicy(
            Modules("AutoLoadPolicy = \"" + std::string(c.hive) + "\"\n"), ParseCmdline(c.cmdline));
        EXPECT_EQ(p.autoload.value, c.want) << c.hive << " + " << c.cmdline;
        EXPECT_EQ(p.autoload.source, c.source) << c.hive << " + " << c.cmdline;
        EXPECT_EQ(p.ignored.size(), c.ignored) << c.hive << " + " << c.cmdline;
    }
    EffectivePolicy p = ComputeEffectivePolicy(Modules("AutoLoadPolicy = \"disabled\"\n"),
                                               ParseCmdline("peinit.autoload=enabled"));
    EXPECT_THAT(p.ignored, ElementsAre("peinit.autoload=enabled ignored: AutoLoadPolicy=disabled "
                                       "from the hive is stricter"));
}

TEST(EffectivePolicy, BlacklistIsAUnionWithSources) {
    EffectivePolicy p = ComputeEffectivePolicy(
        Modules("Blacklist = [\"floppy\", \"snd-pcsp\"]\n"),
        ParseCmdline("modprobe.blacklist=snd_pcsp,nouveau module_blacklist=radeon"));
    EXPECT_THAT(p.blacklist, ElementsAre(BlacklistEntry{"floppy", PolicySource::kHive},
                                         BlacklistEntry{"snd_pcsp", PolicySource::kHive},
                                         BlacklistEntry{"nouveau", PolicySource::kCmdline},
                                         BlacklistEntry{"radeon", PolicySource::kCmdline}));
    EXPECT_TRUE(p.IsBlacklisted("snd-pcsp"));
    EXPECT_FALSE(p.IsBlacklisted("e1000e"));
}

TEST(EffectivePolicy, SigningOnlyTightens) {
    EffectivePolicy up = ComputeEffectivePolicy(AbsentHive(), ParseCmdline("module.sig_enforce=1"));
    EXPECT_EQ(up.signing.value, SigningPolicy::kEnforce);
    EXPECT_EQ(up.signing.source, PolicySource::kCmdline);
    EffectivePolicy down = ComputeEffectivePolicy(Modules("SigningPolicy = \"enforce\"\n"),
                                                  ParseCmdline("module.sig_enforce=0"));
    EXPECT_EQ(down.signing.value, SigningPolicy::kEnforce);
    EXPECT_EQ(down.signing.source, PolicySource::kHive);
    EXPECT_EQ(down.ignored.size(), 1u);
}

TEST(EffectivePolicy, WorkersAndModprobe) {
    EffectivePolicy p =
        ComputeEffectivePolicy(Parse("['Machine\\System\\Modules']\nModuleWorkers = 8\n"
                                     "['Machine\\System\\Kernel']\nModprobe = \"/sbin/h\"\n"),
                               ParseCmdline("peinit.workers=2"));
    EXPECT_EQ(p.workers.value, 2);
    EXPECT_EQ(p.workers.source, PolicySource::kCmdline);
    EXPECT_EQ(p.modprobe.value, "/sbin/h");
    EXPECT_EQ(p.modprobe.source, PolicySource::kHive);
    EffectivePolicy q = ComputeEffectivePolicy(Modules("ModuleWorkers = 8\n"), ParseCmdline(""));
    EXPECT_EQ(q.workers.value, 8);
    EXPECT_EQ(q.workers.source, PolicySource::kHive);
}

TEST(EffectivePolicy, SourceNames) {
    EXPECT_EQ(ToString(PolicySource::kCmdline), "cmdline");
    EXPECT_EQ(ToString(PolicySource::kFallback), "fallback");
    EXPECT_EQ(ToString(HiveState::kFallback), "fallback");
}

}  // namespace
}  // namespace peinit
