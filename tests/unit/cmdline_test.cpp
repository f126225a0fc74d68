#include "peinit/core/cmdline.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace peinit {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

KernelParam Flag(std::string key) { return {std::move(key), std::nullopt}; }
KernelParam Kv(std::string key, std::string value) { return {std::move(key), std::move(value)}; }

std::vector<std::string> DiagnosticTexts(const Cmdline& c) {
    std::vector<std::string> out;
    for (const auto& d : c.diagnostics) out.push_back(d.ToString());
    return out;
}

TEST(Tokenize, WhitespaceAndTrailingNewline) {
    EXPECT_THAT(TokenizeCmdline("  ro\tquiet   root=/dev/vda1 \n"),
                ElementsAre(Flag("ro"), Flag("quiet"), Kv("root", "/dev/vda1")));
    EXPECT_THAT(TokenizeCmdline(""), IsEmpty());
    EXPECT_THAT(TokenizeCmdline(" \n\t "), IsEmpty());
}

TEST(Tokenize, QuotesLikeNextArg) {
    // Value quoted, whole parameter quoted, and a quote in the middle (kept, as the kernel does).
    EXPECT_THAT(TokenizeCmdline(R"(foo="a b" "bar=c d" baz=x"y z"w)"),
                ElementsAre(Kv("foo", "a b"), Kv("bar", "c d"), Kv("baz", R"(x"y z"w)")));
    EXPECT_THAT(TokenizeCmdline(R"("quoted flag" e="")"),
                ElementsAre(Flag("quoted flag"), Kv("e", "")));
    // The first '=' splits, later ones belong to the value.
    EXPECT_THAT(TokenizeCmdline("a=b=c"), ElementsAre(Kv("a", "b=c")));
}

TEST(Tokenize, EmptyValueAndLeadingEquals) {
    EXPECT_THAT(TokenizeCmdline("foo= =bar"), ElementsAre(Kv("foo", ""), Flag("=bar")));
}

TEST(Tokenize, DashesEndKernelParams) {
    std::vector<std::string> init_args;
    auto params = TokenizeCmdline(R"(quiet -- single "x=a b" -v -- dropped)", &init_args);
    EXPECT_THAT(params, ElementsAre(Flag("quiet")));
    EXPECT_THAT(init_args, ElementsAre("single", "x=a b", "-v"));
    // `--=x` is a parameter with a value, not the separator.
    EXPECT_THAT(TokenizeCmdline("--=x a"), ElementsAre(Kv("--", "x"), Flag("a")));
}

TEST(Cmdline, RootInitFlagsLastWins) {
    auto c =
        ParseCmdline("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro root=UUID=abcd init=/sbin/x quiet");
    EXPECT_EQ(c.root, "UUID=abcd");
    EXPECT_EQ(c.init, "/sbin/x");
    EXPECT_THAT(c.flags, ElementsAre("ro", "quiet"));
    EXPECT_TRUE(c.HasFlag("quiet"));
    EXPECT_FALSE(c.HasFlag("single"));
    EXPECT_EQ(c.params.size(), 6u);
    EXPECT_THAT(c.diagnostics, IsEmpty());
}

TEST(Cmdline, EmptyRootIsDiagnosed) {
    auto c = ParseCmdline("root=");
    EXPECT_FALSE(c.root);
    EXPECT_THAT(DiagnosticTexts(c), ElementsAre("root=: needs a value"));
}

TEST(Cmdline, ModuleParamsNormaliseModuleName) {
    auto c =
        ParseCmdline(R"(snd-hda-intel.power_save=0 e1000e.debug usb_storage.quirks="1:2 3:4")");
    EXPECT_THAT(c.module_params, ElementsAre(ModuleParam{"snd_hda_intel", "power_save", "0"},
                                             ModuleParam{"e1000e", "debug", std::nullopt},
                                             ModuleParam{"usb_storage", "quirks", "1:2 3:4"}));
    EXPECT_EQ(c.ModuleOptions("snd-hda-intel"), "power_save=0");
    EXPECT_EQ(c.ModuleOptions("usb_storage"), R"(quirks="1:2 3:4")");
    EXPECT_EQ(c.ModuleOptions("e1000e"), "debug");
    EXPECT_EQ(c.ModuleOptions("absent"), "");
    // Module params are not flags even without a value.
    EXPECT_THAT(c.flags, IsEmpty());
}

TEST(Cmdline, MultipleParamsForOneModuleJoinInOrder) {
    auto c = ParseCmdline("foo.a=1 bar.x=2 foo.b= foo-.c=3");
    EXPECT_EQ(c.ModuleOptions("foo"), R"(a=1 b="")");
    EXPECT_EQ(c.ModuleOptions("foo_"), "c=3");
}

TEST(Cmdline, MalformedModuleParams) {
    auto c = ParseCmdline(".x=1 foo.=2 bad!mod.p=3");
    EXPECT_THAT(c.module_params, IsEmpty());
    EXPECT_THAT(
        DiagnosticTexts(c),
        ElementsAre(".x=1: malformed module parameter (expected module.param=value)",
                    "foo.=2: malformed module parameter (expected module.param=value)",
                    "bad!mod.p=3: malformed module parameter (expected module.param=value)"));
}

// Found by tests/fuzz (cmdline): ModuleOptions() must give back exactly the module's parameters
// when the kernel tokenises it again, which a '"' in a value or a spaced or "--" parameter name
// broke ("loop.max_loop=8\"-- single \"init" became max_loop=8"-- plus two stray parameters).
TEST(Cmdline, ModuleParamsTheKernelCouldNotReadBackAreRefused) {
    auto c = ParseCmdline(R"(loop.max_loop=8"-- single "init a.-- "a.b c=1" a.ok="x y")");
    EXPECT_THAT(c.module_params, ElementsAre(ModuleParam{"a", "ok", "x y"}));
    EXPECT_THAT(DiagnosticTexts(c),
                ElementsAre(R"(loop.max_loop=8"-- single "init: module parameter value cannot )"
                            R"(contain '"')",
                            "a.--: malformed module parameter (expected module.param=value)",
                            "a.b c=1: malformed module parameter (expected module.param=value)"));
    EXPECT_THAT(TokenizeCmdline(c.ModuleOptions("a")), ElementsAre(Kv("ok", "x y")));
}

TEST(Cmdline, BlacklistAccumulatesNormalisesAndDeduplicates) {
    auto c = ParseCmdline(
        "modprobe.blacklist=floppy,pcspkr modprobe.blacklist=snd-pcsp,,floppy "
        "module_blacklist=nouveau");
    EXPECT_THAT(c.blacklist, ElementsAre("floppy", "pcspkr", "snd_pcsp", "nouveau"));
    EXPECT_THAT(c.module_params, IsEmpty());
    EXPECT_THAT(c.diagnostics, IsEmpty());
}

TEST(Cmdline, BlacklistBadEntries) {
    auto c = ParseCmdline("modprobe.blacklist= modprobe.blacklist=ok,bad/name modprobe.blacklist");
    EXPECT_THAT(c.blacklist, ElementsAre("ok"));
    EXPECT_THAT(DiagnosticTexts(c),
                ElementsAre("modprobe.blacklist=: empty module list",
                            "modprobe.blacklist=ok,bad/name: invalid module name \"bad/name\", "
                            "ignoring it",
                            "modprobe.blacklist: empty module list"));
}

TEST(Cmdline, ModulesLoadBothSpellingsAccumulate) {
    auto c =
        ParseCmdline("modules_load=virtio_net,fs-ext4 rd.modules_load=dm_crypt modules-load=a");
    EXPECT_THAT(c.modules_load, ElementsAre("virtio_net", "fs-ext4", "dm_crypt", "a"));
    EXPECT_THAT(c.module_params, IsEmpty());
}

TEST(Cmdline, PeinitLockIsStrictestOfRepeats) {
    EXPECT_EQ(ParseCmdline("peinit.lock=1").lock, true);
    EXPECT_EQ(ParseCmdline("peinit.lock=0").lock, false);
    EXPECT_EQ(ParseCmdline("peinit.lock").lock, true);
    EXPECT_EQ(ParseCmdline("peinit.lock=1 peinit.lock=0").lock, true);
    EXPECT_EQ(ParseCmdline("peinit.lock=0 peinit.lock=1").lock, true);
    EXPECT_FALSE(ParseCmdline("quiet").lock);
    // A malformed tightening tightens to the strictest value instead of being ignored.
    auto bad = ParseCmdline("peinit.lock=enabled");
    EXPECT_EQ(bad.lock, true);
    EXPECT_THAT(DiagnosticTexts(bad),
                ElementsAre("peinit.lock=enabled: not a boolean (expected 0 or 1): taken as 1, "
                            "the strictest"));
    EXPECT_EQ(ParseCmdline("peinit.lock=0 peinit.lock=maybe").lock, true);
}

TEST(Cmdline, PeinitAutoloadOnlyTightensAcrossRepeats) {
    EXPECT_EQ(ParseCmdline("peinit.autoload=allow-list").autoload, AutoLoadPolicy::kAllowList);
    EXPECT_EQ(ParseCmdline("peinit.autoload=disabled peinit.autoload=enabled").autoload,
              AutoLoadPolicy::kDisabled);
    EXPECT_EQ(ParseCmdline("peinit.autoload=enabled peinit.autoload=allow-list").autoload,
              AutoLoadPolicy::kAllowList);
    // A typo tightens to the strictest value (disabled) instead of being ignored.
    auto bad = ParseCmdline("peinit.autoload=enabeld peinit.autoload");
    EXPECT_EQ(bad.autoload, AutoLoadPolicy::kDisabled);
    EXPECT_THAT(DiagnosticTexts(bad),
                ElementsAre("peinit.autoload=enabeld: expected enabled, allow-list or disabled: "
                            "taken as disabled, the strictest",
                            "peinit.autoload: expected enabled, allow-list or disabled: taken "
                            "as disabled, the strictest"));
    EXPECT_EQ(ParseCmdline("peinit.autoload=allow-lst").autoload, AutoLoadPolicy::kDisabled);
}

TEST(Cmdline, PeinitEmergencyIsTyped) {
    EXPECT_FALSE(ParseCmdline("quiet").emergency);
    EXPECT_EQ(ParseCmdline("peinit.emergency=shell").emergency, EmergencyAction::kShell);
    EXPECT_EQ(ParseCmdline("peinit.emergency=shell peinit.emergency=poweroff").emergency,
              EmergencyAction::kPoweroff);
    auto bad = ParseCmdline("peinit.emergency=shel");
    EXPECT_FALSE(bad.emergency);
    EXPECT_THAT(DiagnosticTexts(bad),
                ElementsAre("peinit.emergency=shel: expected shell or poweroff"));
    EXPECT_THAT(DiagnosticTexts(ParseCmdline("peinit.emergency=shell")), IsEmpty());
}

TEST(Cmdline, PeinitCollectIsADevicePath) {
    EXPECT_FALSE(ParseCmdline("quiet").collect);
    EXPECT_EQ(ParseCmdline("peinit.collect=/dev/ttyS1").collect, "/dev/ttyS1");
    EXPECT_EQ(ParseCmdline("peinit.collect=/dev/ttyS1 peinit.collect=/dev/vdb").collect,
              "/dev/vdb");
    EXPECT_THAT(DiagnosticTexts(ParseCmdline("peinit.collect=/dev/ttyS1")), IsEmpty());
    for (const char* bad : {"peinit.collect", "peinit.collect=", "peinit.collect=ttyS1",
                            "peinit.collect=/run/peinit/x", "peinit.collect=/dev/../etc/passwd",
                            "peinit.collect=/dev/", "peinit.collect=/dev//ttyS1"}) {
        SCOPED_TRACE(bad);
        auto c = ParseCmdline(std::string(bad) + " peinit.collect=/dev/ttyS1 " + bad);
        EXPECT_EQ(c.collect, "/dev/ttyS1") << "a bad value leaves the last valid one";
        EXPECT_THAT(DiagnosticTexts(c),
                    ElementsAre(std::string(bad) + ": expected a device path under /dev, e.g. "
                                                   "/dev/ttyS1",
                                std::string(bad) + ": expected a device path under /dev, e.g. "
                                                   "/dev/ttyS1"));
    }
}

TEST(Cmdline, PeinitWorkers) {
    EXPECT_EQ(ParseCmdline("peinit.workers=4").workers, 4);
    EXPECT_EQ(ParseCmdline("peinit.workers=4 peinit.workers=2").workers, 2);
    for (const char* bad :
         {"peinit.workers=abc", "peinit.workers=0", "peinit.workers=-1", "peinit.workers=3x",
          "peinit.workers=", "peinit.workers=257", "peinit.workers=99999999999999999999"}) {
        auto c = ParseCmdline(bad);
        EXPECT_FALSE(c.workers) << bad;
        ASSERT_EQ(c.diagnostics.size(), 1u) << bad;
        EXPECT_EQ(c.diagnostics[0].message, "not an integer between 1 and 256");
    }
    // A bad repeat keeps the earlier good value.
    EXPECT_EQ(ParseCmdline("peinit.workers=3 peinit.workers=x").workers, 3);
}

TEST(Cmdline, UnknownPeinitKeysAreDiagnosticsNotModuleParams) {
    auto c = ParseCmdline("peinit.lokc=1 peinit.debug");
    EXPECT_THAT(DiagnosticTexts(c), ElementsAre("peinit.lokc=1: unknown peinit parameter",
                                                "peinit.debug: unknown peinit parameter"));
    EXPECT_THAT(c.module_params, IsEmpty());
    EXPECT_FALSE(c.lock);
}

TEST(Cmdline, DashesAndUnderscoresAreTheSameInKeys) {
    auto c = ParseCmdline("module-blacklist=x rd.modules-load=y peinit-lock=1");
    EXPECT_THAT(c.blacklist, ElementsAre("x"));
    EXPECT_THAT(c.modules_load, ElementsAre("y"));
    // Only '-' and '_' are interchangeable: "peinit-lock" is not in the peinit. namespace.
    EXPECT_FALSE(c.lock);
    EXPECT_THAT(c.diagnostics, IsEmpty());
}

TEST(Cmdline, SigEnforceUsesKernelBoolSyntax) {
    EXPECT_EQ(ParseCmdline("module.sig_enforce=1").sig_enforce, true);
    EXPECT_EQ(ParseCmdline("module.sig_enforce=Y").sig_enforce, true);
    EXPECT_EQ(ParseCmdline("module.sig_enforce").sig_enforce, true);
    EXPECT_EQ(ParseCmdline("module.sig_enforce=0").sig_enforce, false);
    EXPECT_EQ(ParseCmdline("module.sig_enforce=1 module.sig_enforce=n").sig_enforce, false);
    auto bad = ParseCmdline("module.sig_enforce=x");
    EXPECT_FALSE(bad.sig_enforce);
    EXPECT_EQ(bad.diagnostics.size(), 1u);
    EXPECT_FALSE(ParseCmdline("quiet").sig_enforce);
}

TEST(Cmdline, ReservedNamespacesAreNotModuleParams) {
    auto c = ParseCmdline("rd.luks.uuid=abc rd.break modprobe.foo=1 systemd.unit=x");
    EXPECT_THAT(c.module_params, ElementsAre(ModuleParam{"systemd", "unit", "x"}));
    EXPECT_THAT(c.flags, IsEmpty());
}

TEST(Cmdline, UnterminatedQuoteSwallowsTheRest) {
    auto c = ParseCmdline(R"(quiet foo="a b peinit.lock=1)");
    EXPECT_THAT(c.params, ElementsAre(Flag("quiet"), Kv("foo", "a b peinit.lock=1")));
    EXPECT_FALSE(c.lock);
    EXPECT_THAT(DiagnosticTexts(c), ElementsAre("foo=a b peinit.lock=1: unterminated quote"));
}

TEST(Cmdline, ParamsAfterDashesAreNotInterpreted) {
    auto c = ParseCmdline("quiet -- peinit.lock=1 single");
    EXPECT_FALSE(c.lock);
    EXPECT_THAT(c.init_args, ElementsAre("peinit.lock=1", "single"));
    EXPECT_THAT(c.flags, ElementsAre("quiet"));
}

TEST(Cmdline, GarbageNeverCrashes) {
    std::string garbage;
    for (int i = 0; i < 512; ++i) garbage += static_cast<char>((i * 131 + 7) % 256);
    garbage += std::string("\0\"=\"", 4);
    auto c = ParseCmdline(garbage);
    EXPECT_FALSE(c.params.empty());
    EXPECT_THAT(ParseCmdline("=").params, ElementsAre(Flag("=")));
    EXPECT_THAT(ParseCmdline("a=\"").params, ElementsAre(Kv("a", "")));
    EXPECT_THAT(ParseCmdline("\"").params, ElementsAre(Flag("")));
}

TEST(KernelBool, Forms) {
    EXPECT_EQ(ParseKernelBool("yes"), true);
    EXPECT_EQ(ParseKernelBool("on"), true);
    EXPECT_EQ(ParseKernelBool("off"), false);
    EXPECT_EQ(ParseKernelBool("N"), false);
    EXPECT_EQ(ParseKernelBool("o"), std::nullopt);
    EXPECT_EQ(ParseKernelBool(""), std::nullopt);
    EXPECT_EQ(ParseKernelBool("2"), std::nullopt);
}

}  // namespace
}  // namespace peinit
