// The status model behind peinitctl (peinit/core/status.h) from fixture records and kernel
// facts, its JSON round trip, the SVG timeline, and `peinitctl lock` (RunRuntimeLock) against
// the FakeKernel.

#include "peinit/core/status.h"
#include "tests/json_at.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/module_lockdown.h>

#include <algorithm>
#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/fakes/fake_kernel.h"
#include "peinit/sys/status_sources.h"

namespace peinit {
namespace {

namespace pt = boost::property_tree;

const char* kPolicy = R"({
  "version": 1,
  "hive": {"state": "loaded", "path": "/etc/peinit/hive.toml", "errors": []},
  "modload_root": "/",
  "lock_after_boot": {"value": true, "source": "hive"},
  "autoload": {"value": "allow-list", "source": "hive"},
  "autoload_allowed": ["af_packet"],
  "blacklist": [{"module": "floppy", "source": "hive"}, {"module": "pcspkr", "source": "cmdline"}],
  "signing": {"value": "warn", "source": "default"},
  "ignored": []
})";

const char* kPolicyNoLock = R"({
  "version": 1,
  "hive": {"state": "loaded", "path": "/etc/peinit/hive.toml", "errors": []},
  "modload_root": "/",
  "lock_after_boot": {"value": false, "source": "hive"},
  "autoload": {"value": "enabled", "source": "default"},
  "autoload_allowed": [], "blacklist": [],
  "signing": {"value": "warn", "source": "default"}, "ignored": []
})";

const char* kPolicyFallback = R"({
  "version": 1,
  "hive": {"state": "fallback", "path": "/etc/peinit/hive.toml",
           "errors": ["/etc/peinit/hive.toml: group- or world-writable"]},
  "modload_root": "/",
  "lock_after_boot": {"value": true, "source": "fallback"},
  "autoload": {"value": "disabled", "source": "fallback"},
  "autoload_allowed": [], "blacklist": [],
  "signing": {"value": "warn", "source": "default"}, "ignored": []
})";

const char* kLockdown = R"({
  "version": 1, "requested": true, "requested_by": "hive", "mechanism": "syscall",
  "trigger": "registry", "locked": true, "error": "", "pid": 1, "comm": "peinit",
  "boot_offset_ms": 2345, "wall_time": "2024-05-01T10:00:02Z"
})";

const char* kLockdownNone = R"({
  "version": 1, "requested": false, "requested_by": "hive", "mechanism": "",
  "trigger": "", "locked": false, "error": "", "pid": 1, "comm": "peinit",
  "boot_offset_ms": 2345, "wall_time": "2024-05-01T10:00:02Z"
})";

std::string ModulesRecord(const std::string& loop_status) {
    return R"({
  "version": 1, "total_ms": 14, "boot_offset_ms": 2100, "workers": 2, "error": "",
  "signing": {"applied": true, "error": "", "policy": "warn", "sig_enforce": "N"},
  "modules": [
    {"name": "ext4", "status": "loaded", "unit": "storage", "errno": "", "error": 0,
     "reason": "", "package": "fs.pkg", "start_us": 9000, "duration_us": 4000,
     "ready_us": 4000, "requested_by": ["unit storage"], "waits_for": ["jbd2"]},
    {"name": "jbd2", "status": "loaded", "unit": "", "errno": "", "error": 0, "reason": "",
     "package": "fs.pkg", "start_us": 1000, "duration_us": 3000,
     "requested_by": ["unit storage -> ext4"]},
    {"name": "loop", "status": ")" +
           loop_status + R"(", "unit": "base", "errno": "ENOEXEC", "error": 8,
     "reason": "bad image", "package": "base.pkg", "start_us": 500, "duration_us": 1500,
     "requested_by": ["unit base"]},
    {"name": "floppy", "status": "blacklisted", "unit": "base", "errno": "", "error": 0,
     "reason": "hive Blacklist", "package": "", "start_us": 0, "duration_us": 0,
     "requested_by": ["unit base"]}
  ]
})";
}

RecordText Rec(const char* name, const std::string& text) {
    return {std::string("/run/peinit/") + name, text, ""};
}
RecordText Missing(const char* name) {
    return {std::string("/run/peinit/") + name, std::nullopt, "missing"};
}

KernelFacts LockedKernel() {
    KernelFacts k;
    k.query_locked = true;
    k.sysctl_locked = true;
    k.modules_disabled = false;
    k.modprobe = "/sbin/peinit-modprobe";
    k.sig_enforce = "N";
    k.lsm_lockdown = "[none] integrity confidentiality";
    return k;
}

StatusInputs LockedBoot() {
    StatusInputs in;
    in.kernel = LockedKernel();
    in.policy = Rec("policy.json", kPolicy);
    in.lockdown = Rec("lockdown.json", kLockdown);
    in.modules = Rec("modules.json", ModulesRecord("loaded"));
    return in;
}

TEST(Status, LockedBootAsConfigured) {
    Status s = BuildStatus(LockedBoot());
    EXPECT_EQ(s.ExitCode(), 0) << RenderStatusText(s);
    EXPECT_TRUE(s.problems.empty());
    EXPECT_EQ(s.locked, true);
    EXPECT_EQ(s.mechanism, "syscall");
    EXPECT_EQ(s.locked_from, "module_lockdown");
    EXPECT_EQ(s.trigger, "registry");
    EXPECT_EQ(s.set_by_pid, 1);
    EXPECT_EQ(s.set_by_comm, "peinit");
    EXPECT_EQ(s.set_by_from, "record");
    EXPECT_EQ(s.locked_at_ms, 2345);
    EXPECT_EQ(s.locked_at_wall, "2024-05-01T10:00:02Z");
    EXPECT_EQ(s.sig_enforce, "0");
    EXPECT_EQ(s.lsm_lockdown, "none");
    EXPECT_EQ(s.autoload.value, "allow-list");
    ASSERT_EQ(s.blacklist.size(), 2u);
    EXPECT_EQ(s.blacklist[1].module, "pcspkr");
    EXPECT_EQ(s.blacklist[1].source, "cmdline");
    // Sorted by start time; the never-attempted blacklisted one last.
    ASSERT_EQ(s.modules.size(), 4u);
    EXPECT_EQ(s.modules[0].name, "loop");
    EXPECT_EQ(s.modules[1].name, "jbd2");
    EXPECT_EQ(s.modules[2].name, "ext4");
    EXPECT_EQ(s.modules[3].name, "floppy");
    // ext4 needed jbd2, and was ready when jbd2 was done (both from the record).
    EXPECT_EQ(s.modules[2].waits_for, std::vector<std::string>{"jbd2"});
    EXPECT_EQ(s.modules[2].ready_us, 4000);
    EXPECT_EQ(s.modules[1].ready_us, -1);
    std::string text = RenderStatusText(s);
    EXPECT_EQ(text.find("Problems:"), std::string::npos);
    EXPECT_NE(text.find("locked (module_lockdown syscall)"), std::string::npos) << text;
    EXPECT_NE(text.find("trigger registry"), std::string::npos) << text;
}

TEST(Status, KernelLogNamesWhoLockedAtRuntime) {
    StatusInputs in = LockedBoot();
    in.policy = Rec("policy.json", kPolicyNoLock);
    in.lockdown = Rec("lockdown.json", kLockdownNone);
    auto refused = ParseLockLogLine(
        "module_lockdown: lock refused (EPERM: needs CAP_SYS_ADMIN) for pid=57 uid=65534 "
        "euid=65534 auid=4294967295 ses=4294967295 comm=\"peinitctl\" exe=\"/usr/bin/peinitctl\" "
        "cap_eff=0000000000000000 trigger=runtime-syscall result=denied suppressed=0",
        4'000'000);
    auto locked = ParseLockLogLine(
        "module_lockdown: locked by pid=58 uid=0 euid=0 auid=4294967295 ses=4294967295 "
        "comm=\"peinitctl\" exe=\"/usr/bin/peinitctl\" cap_eff=000001ffffffffff "
        "trigger=runtime-syscall result=locked",
        5'250'000);
    ASSERT_TRUE(refused && locked);
    EXPECT_EQ(refused->result, "denied");
    EXPECT_EQ(refused->uid, 65534);
    in.kernel.lock_log = std::vector<LockLogEvent>{*refused, *locked};
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 0) << RenderStatusText(s);  // a runtime lock is not a problem
    EXPECT_EQ(s.trigger, "runtime-syscall");
    EXPECT_EQ(s.set_by_pid, 58);
    EXPECT_EQ(s.set_by_comm, "peinitctl");
    EXPECT_EQ(s.set_by_from, "kernel-log");
    EXPECT_EQ(s.locked_at_ms, 5250);
    EXPECT_EQ(s.lock_requested, false);
}

// R-25: status says who answers demand loads and what it enforces.
TEST(Status, SaysWhichHelperAnswersDemandLoads) {
    StatusInputs in;
    in.policy = Rec("policy.json", kPolicyNoLock);
    in.kernel.query_locked = false;
    auto helper = [&](const std::string& modprobe) {
        in.kernel.modprobe = modprobe;
        return BuildStatus(in).helper;
    };
    EXPECT_EQ(helper("/run/peinit/ro/bin/peinit-modprobe"),
              "peinit's, on the read-only /run/peinit/ro: enforces AutoLoadPolicy=enabled and "
              "the blacklist as recorded in /run/peinit/ro/policy.json");
    EXPECT_EQ(helper("/sbin/peinit-modprobe"),
              "peinit's: enforces AutoLoadPolicy=enabled and the blacklist as recorded in "
              "/run/peinit/policy.json");
    EXPECT_EQ(helper(""), "none: demand loads fail at once");
    EXPECT_EQ(helper("/sbin/modprobe"),
              "\"/sbin/modprobe\" is not peinit's helper: peinit does not enforce "
              "AutoLoadPolicy=enabled and the blacklist on demand loads");
    in.kernel.query_locked = true;
    EXPECT_EQ(helper("/sbin/modprobe"), "none: module loading is locked");
    in.blacklist_exported = true;
    EXPECT_EQ(BuildStatus(in).blacklist_export, "/run/modprobe.d/peinit-blacklist.conf");
    EXPECT_NE(RenderStatusText(BuildStatus(in)).find("not a direct finit_module"),
              std::string::npos);
    Status s = BuildStatus(in);
    EXPECT_NE(RenderStatusText(s).find("demand loads     none: module loading is locked"),
              std::string::npos)
        << RenderStatusText(s);
}

// A module coldplug could not load (e.g. a tampered package member, refused on first use) is a
// problem with its reason; a refusal by the auto-load policy is not.
TEST(Status, ColdplugFailuresAreProblems) {
    StatusInputs in = LockedBoot();
    in.coldplug = Rec("coldplug.json", R"J({"version": 1, "policy": "enabled", "total_ms": 9,
      "devices": [], "error": "", "modules": [
        {"name": "e1000e", "status": "failed", "error": 0, "package": "all.pkg",
         "reason": "package rejected (all.pkg: hash-mismatch: modules/e1000e.ko has SHA-256 1, the manifest says 2)",
         "requested_by": ["coldplug /sys/devices/pci0000:00/0000:00:04.0"],
         "origins": [{"kind": "coldplug", "name": "/sys/devices/pci0000:00/0000:00:04.0"}],
         "duration_us": 0},
        {"name": "af_alg", "status": "skipped", "error": 0, "package": "",
         "reason": "refused: not in AutoLoadAllowed", "refused": true,
         "requested_by": ["coldplug /sys/devices/platform/x"],
         "origins": [{"kind": "coldplug", "name": "/sys/devices/platform/x"}],
         "duration_us": 0}]})J");
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 1);
    ASSERT_EQ(s.problems.size(), 1u) << RenderStatusText(s);
    EXPECT_EQ(s.problems[0],
              "coldplug: module e1000e failed: package rejected (all.pkg: hash-mismatch: "
              "modules/e1000e.ko has SHA-256 1, the manifest says 2) (for "
              "/sys/devices/pci0000:00/0000:00:04.0)");
    testing::TestJson t(RenderStatusJson(s));
    EXPECT_EQ(t.Size("coldplug.list"), 2u);
    EXPECT_EQ(t.Str("coldplug.list.0.status"), "failed");
    // Without the record (an older image, or the boot stopped earlier): nothing is noted.
    EXPECT_EQ(BuildStatus(LockedBoot()).ExitCode(), 0);
}

// R-37: the devices coldplug left when it reached its settle bound are problems, each named.
TEST(Status, ColdplugThatDidNotSettleIsAProblem) {
    StatusInputs in = LockedBoot();
    in.coldplug = Rec("coldplug.json", R"J({"version": 1, "policy": "enabled", "total_ms": 9,
      "devices": [], "error": "", "modules": [],
      "settle": {"rounds": 40, "settled": false, "quiet_ms": 100, "timeout_ms": 10000,
                 "left": [{"syspath": "/sys/devices/platform/flood.40", "modalias": "platform:flood"}]}})J");
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 1);
    ASSERT_EQ(s.problems.size(), 1u) << RenderStatusText(s);
    EXPECT_EQ(s.problems[0],
              "coldplug: did not settle before the lock: /sys/devices/platform/flood.40 "
              "(platform:flood) was left without its drivers");
    // Settled: nothing to say.
    in.coldplug = Rec("coldplug.json", R"J({"version": 1, "policy": "enabled", "total_ms": 9,
      "devices": [], "error": "", "modules": [],
      "settle": {"rounds": 2, "settled": true, "quiet_ms": 100, "timeout_ms": 10000, "left": []}})J");
    EXPECT_EQ(BuildStatus(in).ExitCode(), 0) << RenderStatusText(BuildStatus(in));
}

TEST(Status, NotALockLine) {
    EXPECT_FALSE(ParseLockLogLine("loop: module loaded", 1));
    EXPECT_FALSE(ParseLockLogLine("module_lockdown: garbage", 1));
    // The opening and the result must agree, and the line must be whole.
    EXPECT_FALSE(ParseLockLogLine(
        "module_lockdown: locked by pid=58 uid=0 euid=0 auid=1 ses=1 comm=\"x\" exe=\"/x\" "
        "cap_eff=1ff trigger=registry result=denied",
        1));
    EXPECT_FALSE(ParseLockLogLine("module_lockdown: locked by pid=58 uid=0 comm=x result=locked", 1));
    // The format before comm and exe were encoded (a raw comm) is not the kernel's any more.
    EXPECT_FALSE(ParseLockLogLine(
        "module_lockdown: locked by pid=58 uid=0 euid=0 auid=1 ses=1 comm=x exe=/x "
        "cap_eff=1ff trigger=registry result=locked",
        1));
    // A refusal carries its suppressed count; a success does not.
    EXPECT_FALSE(ParseLockLogLine(
        "module_lockdown: lock refused (EPERM: needs CAP_SYS_ADMIN) for pid=5 uid=1 euid=1 "
        "auid=1 ses=1 comm=\"x\" exe=\"/x\" cap_eff=0 trigger=registry result=denied",
        1));
    EXPECT_FALSE(ParseLockLogLine(
        "module_lockdown: locked by pid=58 uid=0 euid=0 auid=1 ses=1 comm=\"x\" exe=\"/x\" "
        "cap_eff=1ff trigger=registry result=locked suppressed=0",
        1));
    // The other one-way ops' lines are not lock evidence.
    EXPECT_FALSE(ParseLockLogLine(
        "module_lockdown: autoload disabled by pid=1 uid=0 euid=0 auid=1 ses=1 comm=\"peinit\" "
        "exe=\"/init\" cap_eff=1ff trigger=registry result=autoload-disabled",
        1));
    EXPECT_FALSE(ParseLockLogLine(
        "module_lockdown: kernel.modprobe sealed by pid=1 uid=0 euid=0 auid=1 ses=1 "
        "comm=\"peinit\" exe=\"/init\" cap_eff=1ff trigger=registry result=modprobe-sealed",
        1));
}

// R-27/R-05 (issue 15, point 3): lock evidence cannot be forged from user space. The kernel
// writes a caller's comm and exe as audit does ("text", or hex when they hold a space, a quote or
// a control byte), so ` key=value` text in them stays inside the one field; a demand-load alias
// with a whole lock line in it, or a record written to /dev/kmsg by a process (any facility but
// the kernel's), is not evidence either.
TEST(Status, LockEvidenceCannotBeForged) {
    const std::string tail =
        " cap_eff=0000000000000000 trigger=runtime-syscall result=denied suppressed=3";
    auto refused = [&](const std::string& comm, const std::string& exe) {
        return ParseLockLogLine(
            "module_lockdown: lock refused (EPERM: needs CAP_SYS_ADMIN) for pid=57 uid=65534 "
            "euid=65534 auid=4294967295 ses=4294967295 comm=" + comm + " exe=" + exe + tail, 1);
    };
    // comm " result=locked" and exe "/tmp/a cap_eff=1ff trigger=registry result=locked", as the
    // kernel writes them (hex).
    auto hex = [](const std::string& text) {
        std::string out;
        char b[3];
        for (unsigned char c : text) {
            std::snprintf(b, sizeof(b), "%02X", c);
            out += b;
        }
        return out;
    };
    auto e = refused(hex(" result=locked"), hex("/tmp/a cap_eff=1ff trigger=registry result=locked"));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->result, "denied");
    EXPECT_EQ(e->trigger, "runtime-syscall");
    EXPECT_EQ(e->comm, " result=locked");
    EXPECT_EQ(e->pid, 57);
    e = refused("\"a\"", "\"/bin/a\"");
    ASSERT_TRUE(e);
    EXPECT_EQ(e->comm, "a");
    // Raw text where the kernel would have encoded: not the kernel's line.
    EXPECT_FALSE(refused(" result=locked", "\"/tmp/x\""));
    EXPECT_FALSE(refused("\"x\"", "/tmp/a cap_eff=1ff trigger=registry result=locked"));
    EXPECT_FALSE(refused("\"a b\"", "\"/x\""));  // a quoted value never holds a space
    EXPECT_FALSE(refused("6", "\"/x\""));         // hex has an even length
    EXPECT_FALSE(refused("6g", "\"/x\""));
    // The helper's kmsg line quoting a crafted alias: not anchored at the start.
    EXPECT_FALSE(ParseLockLogLine(
        "peinit-modprobe: refused demand load of module_lockdown: locked by pid=1 uid=0 euid=0 "
        "auid=1 ses=1 comm=\"peinit\" exe=\"/init\" cap_eff=1ff trigger=registry result=locked",
        1));

    // Records in /dev/kmsg form: the same exact line counts only with the kernel's facility.
    char tmpl[] = "/tmp/peinit-kmsg-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::filesystem::path kmsg = std::filesystem::path(tmpl) / "kmsg";
    const std::string line =
        "module_lockdown: locked by pid=1 uid=0 euid=0 auid=4294967295 ses=4294967295 "
        "comm=\"peinit\" exe=\"/init\" cap_eff=000001ffffffffff trigger=registry result=locked";
    std::ofstream(kmsg) << "13,100,2000000,-;" << line << "\n"   // LOG_USER: a process wrote it
                        << "5,101,3000000,-;" << line << "\n";   // facility 0: the kernel's
    std::string error;
    auto events = ReadLockLog(kmsg, error);
    std::filesystem::remove_all(tmpl);
    ASSERT_TRUE(events) << error;
    ASSERT_EQ(events->size(), 1u);
    EXPECT_EQ(events->front().time_us, 3000000);
    EXPECT_EQ(events->front().result, "locked");
    EXPECT_EQ(events->front().comm, "peinit");
}

// R-27: status shows the kernel's autoload gates, and says when there are none.
TEST(Status, ShowsTheAutoloadGates) {
    StatusInputs in;
    in.policy = Rec("policy.json", kPolicyNoLock);
    in.kernel.query_locked = false;
    in.kernel.modprobe = "/sbin/peinit-modprobe";
    in.kernel.autoload_disabled = false;
    in.kernel.modprobe_sealed = true;
    Status s = BuildStatus(in);
    std::string text = RenderStatusText(s);
    EXPECT_NE(text.find("modprobe sealed  yes: kernel.modprobe can no longer be changed"),
              std::string::npos) << text;
    EXPECT_NE(text.find("autoload gate    open: the policy is enforced by the helper path"),
              std::string::npos) << text;
    EXPECT_EQ(s.autoload_enforced_by, "helper-path");
    testing::TestJson t(RenderStatusJson(s));
    EXPECT_TRUE(t.At("kernel.modprobe_sealed").IsBool() && t.Bool("kernel.modprobe_sealed"));
    EXPECT_TRUE(t.At("kernel.autoload_disabled").IsBool() && !t.Bool("kernel.autoload_disabled"));
    EXPECT_EQ(t.Str("kernel.autoload_enforced_by"), "helper-path");

    // Once module loading is locked the open gate is moot, and status says so.
    in.kernel.query_locked = true;
    text = RenderStatusText(BuildStatus(in));
    EXPECT_NE(text.find("autoload gate    open, moot: module loading is locked"),
              std::string::npos) << text;
    EXPECT_EQ(text.find("policy is enforced by the helper path"), std::string::npos) << text;
    in.kernel.query_locked = false;

    // AutoLoadPolicy=disabled with the kernel gate closed: no helper at all, the kernel refuses.
    in.kernel.modprobe = "";
    in.kernel.autoload_disabled = true;
    in.kernel.modprobe_sealed = false;
    s = BuildStatus(in);
    text = RenderStatusText(s);
    EXPECT_NE(text.find("autoload gate    disabled in the kernel: request_module fails at once"),
              std::string::npos) << text;
    EXPECT_NE(text.find("modprobe sealed  no: root can still change kernel.modprobe"),
              std::string::npos) << text;
    EXPECT_EQ(s.helper, "none: autoload is disabled in the kernel (request_module fails at once)");
    EXPECT_EQ(s.autoload_enforced_by, "kernel");

    // A stock kernel: no gates to read; the policy rests on the helper path alone.
    in.kernel.autoload_disabled.reset();
    in.kernel.modprobe_sealed.reset();
    s = BuildStatus(in);
    text = RenderStatusText(s);
    EXPECT_NE(text.find("autoload gate    not in this kernel: the policy is enforced only by the "
                        "helper path"),
              std::string::npos) << text;
    EXPECT_EQ(text.find("modprobe sealed"), std::string::npos) << text;
    testing::TestJson t2(RenderStatusJson(s));
    EXPECT_FALSE(t2.Has("kernel.autoload_disabled"));
    EXPECT_EQ(t2.Str("kernel.autoload_enforced_by"), "helper-path");
}

// AutoLoadPolicy=disabled on a kernel whose gate is open is a problem.
TEST(Status, DisabledPolicyWithOpenGateIsAProblem) {
    StatusInputs in;
    in.policy = Rec("policy.json", kPolicyNoLock);
    Status base = BuildStatus(in);
    ASSERT_EQ(base.autoload.value, "enabled");
    std::string disabled = kPolicyNoLock;
    auto pos = disabled.find("\"enabled\"");
    ASSERT_NE(pos, std::string::npos);
    disabled.replace(pos, 9, "\"disabled\"");
    in.policy = Rec("policy.json", disabled);
    in.kernel.query_locked = false;
    in.kernel.modprobe = "";
    in.kernel.autoload_disabled = false;
    Status s = BuildStatus(in);
    ASSERT_EQ(s.autoload.value, "disabled");
    EXPECT_EQ(s.ExitCode(), 1);
    bool found = false;
    for (const auto& p : s.problems)
        found |= p.starts_with("AutoLoadPolicy=disabled but the kernel's autoload gate is not set");
    EXPECT_TRUE(found) << RenderStatusText(s);
    in.kernel.autoload_disabled = true;
    EXPECT_EQ(BuildStatus(in).ExitCode(), 0) << RenderStatusText(BuildStatus(in));
}

// Issue 15: the kernel's taint mask is shown with its letters; an unsigned module under
// SigningPolicy=enforce (taint E) is a problem.
TEST(Status, ShowsTaintAndUnsignedUnderEnforceIsAProblem) {
    EXPECT_EQ(TaintFlags(4096 | 8192),
              (std::vector<std::string>{"O: out-of-tree module loaded",
                                        "E: unsigned module loaded"}));
    EXPECT_EQ(ParseTaint("12288\n"), 12288u);
    EXPECT_EQ(ParseTaint("x"), std::nullopt);

    StatusInputs in = LockedBoot();
    in.kernel.tainted = "0\n";
    Status clean = BuildStatus(in);
    EXPECT_EQ(clean.tainted, 0u);
    EXPECT_NE(RenderStatusText(clean).find("tainted          0 (not tainted)"), std::string::npos)
        << RenderStatusText(clean);
    EXPECT_TRUE(clean.problems.empty());

    in.kernel.tainted = "12288";
    Status s = BuildStatus(in);
    EXPECT_NE(RenderStatusText(s).find("tainted          12288 (O: out-of-tree module loaded; "
                                       "E: unsigned module loaded)"),
              std::string::npos)
        << RenderStatusText(s);
    EXPECT_NE(RenderStatusJson(s).find("\"tainted\" : 12288"), std::string::npos)
        << RenderStatusJson(s);
    EXPECT_TRUE(s.problems.empty()) << "taint alone is no problem under SigningPolicy=warn";
    std::string policy = kPolicy;
    const std::string needle = "\"signing\": {\"value\": \"warn\"";
    ASSERT_NE(policy.find(needle), std::string::npos);
    policy.replace(policy.find(needle), needle.size(), "\"signing\": {\"value\": \"enforce\"");
    in.policy = Rec("policy.json", policy);
    Status enforce = BuildStatus(in);
    EXPECT_NE(std::find(enforce.problems.begin(), enforce.problems.end(),
                        "SigningPolicy=enforce but the kernel is tainted E: an unsigned module "
                        "was loaded"),
              enforce.problems.end())
        << RenderStatusText(enforce);
}

TEST(Status, UnlockedAsConfigured) {
    StatusInputs in = LockedBoot();
    in.kernel.query_locked = false;
    in.kernel.sysctl_locked = false;
    in.policy = Rec("policy.json", kPolicyNoLock);
    in.lockdown = Rec("lockdown.json", kLockdownNone);
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 0) << RenderStatusText(s);
    EXPECT_EQ(s.locked, false);
    EXPECT_EQ(s.mechanism, "");
    EXPECT_NE(RenderStatusText(s).find("unlocked"), std::string::npos);
}

TEST(Status, LockDiffersFromPolicyIsAProblem) {
    StatusInputs in = LockedBoot();
    in.kernel.query_locked = false;
    in.kernel.sysctl_locked = false;
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 1);
    ASSERT_FALSE(s.problems.empty());
    EXPECT_NE(s.problems[0].find("lock differs from policy"), std::string::npos) << s.problems[0];
    std::string text = RenderStatusText(s);
    EXPECT_EQ(text.find("Problems:"), 0u) << text;  // problems first
}

TEST(Status, LockedByBootStepAlthoughPolicySaidNoIsAProblem) {
    StatusInputs in = LockedBoot();
    in.policy = Rec("policy.json", kPolicyNoLock);
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 1);
}

// A module the deny list kept out is the policy at work: a note (the same warning `peinit plan`
// and `peinit-image build` give), and the exit status stays 0.
TEST(Status, BlacklistedModuleIsANoteNotAProblem) {
    Status s = BuildStatus(LockedBoot());
    EXPECT_EQ(s.ExitCode(), 0) << RenderStatusText(s);
    EXPECT_TRUE(s.problems.empty());
    EXPECT_THAT(s.notes, ::testing::Contains(
                             "module floppy blacklisted (hive Blacklist), requested by unit base"));
    EXPECT_NE(RenderStatusText(s).find("Notes:\n  - module floppy blacklisted (hive Blacklist)"),
              std::string::npos)
        << RenderStatusText(s);
}

TEST(Status, FailedModuleIsAProblem) {
    StatusInputs in = LockedBoot();
    in.modules = Rec("modules.json", ModulesRecord("failed"));
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 1);
    ASSERT_EQ(s.problems.size(), 1u);
    EXPECT_EQ(s.problems[0], "module loop failed: ENOEXEC: bad image");
    EXPECT_NE(RenderModulesText(s, true).find("loop"), std::string::npos);
    EXPECT_EQ(RenderModulesText(s, true).find("jbd2"), std::string::npos);
}

TEST(Status, FallbackHiveIsAProblem) {
    StatusInputs in = LockedBoot();
    in.policy = Rec("policy.json", kPolicyFallback);
    in.kernel.modprobe = "";
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 1);
    EXPECT_EQ(s.hive_state, "fallback");
    ASSERT_EQ(s.problems.size(), 1u);
    EXPECT_NE(s.problems[0].find("hardened fallback"), std::string::npos);
    EXPECT_NE(s.problems[0].find("world-writable"), std::string::npos);
}

TEST(Status, ModulesDisabledFallbackMechanism) {
    StatusInputs in = LockedBoot();
    in.kernel = KernelFacts{};
    in.kernel.syscall_missing = true;
    in.kernel.modules_disabled = true;
    in.kernel.modprobe = "";
    in.lockdown = Rec("lockdown.json", R"({"version": 1, "requested": true,
        "requested_by": "hive", "mechanism": "modules_disabled",
        "trigger": "boot-orchestrator-step", "locked": true, "error": "", "pid": 1,
        "comm": "peinit", "boot_offset_ms": 900, "wall_time": "2024-05-01T10:00:01Z"})");
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 0) << RenderStatusText(s);
    EXPECT_EQ(s.locked, true);
    EXPECT_EQ(s.mechanism, "modules_disabled");
    EXPECT_EQ(s.trigger, "boot-orchestrator-step");
    EXPECT_FALSE(s.syscall_available);
    // The fallback with a helper still set is a problem.
    in.kernel.modprobe = "/sbin/modprobe";
    EXPECT_EQ(BuildStatus(in).ExitCode(), 1);
}

// `status --root DIR` of records collected from a VM (no proc/sys in DIR): the lock as the
// lockdown stage recorded it, said to come from the record.
TEST(Status, RecordedLockWhenTheTreeHasNoKernelFacts) {
    StatusInputs in = LockedBoot();
    in.kernel = KernelFacts{};
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 0) << RenderStatusText(s);
    EXPECT_EQ(s.locked, true);
    EXPECT_EQ(s.locked_from, "record");
    EXPECT_EQ(s.mechanism, "syscall");
    EXPECT_EQ(s.set_by_from, "record");
    EXPECT_EQ(s.trigger, "registry");
    EXPECT_NE(RenderStatusText(s).find("locked (module_lockdown syscall), as "
                                       "recorded at boot in lockdown.json (the kernel's own "
                                       "state is not in this tree)"),
              std::string::npos)
        << RenderStatusText(s);
    testing::TestJson json(RenderStatusJson(s));
    EXPECT_EQ(json.Str("lock.read_from"), "record");
    EXPECT_EQ(json.Bool("lock.locked"), true);

    // Unlocked as asked: no claim about the kernel's syscall.
    in.policy = Rec("policy.json", kPolicyNoLock);
    in.lockdown = Rec("lockdown.json", kLockdownNone);
    s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 0) << RenderStatusText(s);
    EXPECT_EQ(s.locked, false);
    EXPECT_EQ(s.locked_from, "record");
    std::string unlocked = RenderStatusText(s);
    EXPECT_NE(unlocked.find("unlocked, as recorded at boot"), std::string::npos) << unlocked;
    EXPECT_EQ(unlocked.find("unpatched"), std::string::npos) << unlocked;

    // A lock the policy asked for and the boot could not apply is still a problem.
    in.policy = Rec("policy.json", kPolicy);
    in.lockdown = Rec("lockdown.json", R"({"version": 1, "requested": true,
        "requested_by": "hive", "mechanism": "syscall", "trigger": "registry", "locked": false,
        "error": "module_lockdown(LOCK): Operation not permitted", "pid": 1, "comm": "peinit",
        "boot_offset_ms": 900, "wall_time": "2024-05-01T10:00:01Z"})");
    s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 1);
    EXPECT_EQ(s.locked, false);
    EXPECT_EQ(s.locked_from, "record");

    // The kernel's facts, when the tree has them, come first.
    in = LockedBoot();
    in.kernel = KernelFacts{};
    in.kernel.sysctl_locked = false;
    s = BuildStatus(in);
    EXPECT_EQ(s.locked, false);
    EXPECT_EQ(s.locked_from, "sysctl");
}

TEST(Status, MissingRecordStillReportsTheKernel) {
    StatusInputs in;
    in.kernel.sysctl_locked = false;
    in.kernel.modprobe = "/sbin/modprobe";
    in.policy = Missing("policy.json");
    in.lockdown = Missing("lockdown.json");
    in.modules = Missing("modules.json");
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 0);
    EXPECT_TRUE(s.RecordMissing());
    EXPECT_EQ(s.locked, false);
    std::string text = RenderStatusText(s);
    EXPECT_NE(text.find("record missing: /run/peinit/policy.json"), std::string::npos) << text;
}

TEST(Status, NothingReadableIsExit2) {
    StatusInputs in;
    in.policy = Missing("policy.json");
    in.lockdown = Missing("lockdown.json");
    in.modules = Missing("modules.json");
    EXPECT_EQ(BuildStatus(in).ExitCode(), 2);
}

TEST(Status, InvalidRecordIsAProblem) {
    StatusInputs in = LockedBoot();
    in.modules = Rec("modules.json", "{\"version\": 1, ");
    Status s = BuildStatus(in);
    EXPECT_EQ(s.ExitCode(), 1);
    EXPECT_EQ(s.records[2].state, "invalid");
    in.modules = Rec("modules.json", R"({"version": 2})");
    EXPECT_EQ(BuildStatus(in).records[2].state, "invalid");
}

TEST(Status, JsonRoundTrip) {
    StatusInputs in = LockedBoot();
    in.modules = Rec("modules.json", ModulesRecord("failed"));
    Status s = BuildStatus(in);
    testing::TestJson t(RenderStatusJson(s));
    EXPECT_EQ(t.Int("version"), 1);
    EXPECT_EQ(t.Int("exit_code"), 1);
    EXPECT_EQ(t.Size("problems"), 1u);
    EXPECT_EQ(t.Bool("lock.locked"), true);
    EXPECT_EQ(t.Str("lock.mechanism"), "syscall");
    EXPECT_EQ(t.Str("lock.trigger"), "registry");
    EXPECT_EQ(t.Int("lock.pid"), 1);
    EXPECT_EQ(t.Str("lock.comm"), "peinit");
    EXPECT_EQ(t.Int("lock.boot_offset_ms"), 2345);
    EXPECT_EQ(t.Bool("lock.requested"), true);
    EXPECT_EQ(t.Str("kernel.sig_enforce"), "0");
    EXPECT_EQ(t.Str("kernel.lsm_lockdown"), "none");
    EXPECT_EQ(t.Str("kernel.modprobe"), "/sbin/peinit-modprobe");
    EXPECT_EQ(t.Str("policy.autoload.value"), "allow-list");
    EXPECT_EQ(t.Str("policy.hive.state"), "loaded");
    EXPECT_EQ(t.Size("policy.blacklist"), 2u);
    EXPECT_EQ(t.Int("modules.summary.failed"), 1);
    EXPECT_EQ(t.Int("modules.summary.ok"), 2);
    ASSERT_EQ(t.Size("modules.list"), 4u);
    EXPECT_EQ(t.Str("modules.list.0.name"), "loop");
    EXPECT_EQ(t.Str("modules.list.0.status"), "failed");
    EXPECT_EQ(t.Str("modules.list.0.errno"), "ENOEXEC");
    EXPECT_EQ(t.Int("modules.list.0.duration_us"), 1500);
    EXPECT_EQ(t.Size("records"), 3u);
}

TEST(Status, JsonOmitsUnknownLockState) {
    StatusInputs in;
    in.kernel.modprobe = "/sbin/modprobe";
    in.policy = Missing("policy.json");
    in.lockdown = Missing("lockdown.json");
    in.modules = Missing("modules.json");
    testing::TestJson t(RenderStatusJson(BuildStatus(in)));
    EXPECT_FALSE(t.Has("lock.locked"));
    EXPECT_EQ(t.Bool("policy.present"), false);
    EXPECT_EQ(t.Bool("modules.present"), false);
}

TEST(Status, SvgHasOneBarPerModule) {
    Status s = BuildStatus(LockedBoot());
    std::istringstream svg(RenderTimelineSvg(s));
    pt::ptree t;
    ASSERT_NO_THROW(pt::read_xml(svg, t));
    int bars = 0, waits = 0, deps = 0;
    std::vector<std::string> names;
    for (const auto& [tag, node] : t.get_child("svg")) {
        std::string cls = node.get<std::string>("<xmlattr>.class", "");
        if (tag == "rect" && cls == "bar") {
            ++bars;
            names.push_back(node.get<std::string>("<xmlattr>.data-module"));
        }
        if (tag == "rect" && cls == "wait") ++waits;
        if (tag == "path" && cls == "dep") ++deps;
    }
    EXPECT_EQ(bars, 4);
    EXPECT_EQ(names, (std::vector<std::string>{"loop", "jbd2", "ext4", "floppy"}));
    EXPECT_EQ(waits, 1);  // ext4 started 5 ms after jbd2 was live
    EXPECT_EQ(deps, 1);
    std::string timeline = RenderTimelineText(s);
    EXPECT_NE(timeline.find("ext4"), std::string::npos);
}

TEST(Status, ReadsFixtureRoot) {
    FakeKernel kernel;
    auto root = std::filesystem::path(PEINIT_SOURCE_DIR) / "tests/fixtures/peinitctl/locked";
    Status s = BuildStatus(ReadStatusInputs(kernel, root));
    EXPECT_EQ(s.ExitCode(), 0) << RenderStatusText(s);
    EXPECT_EQ(s.locked_from, "sysctl");
    EXPECT_EQ(s.set_by_from, "kernel-log");
    EXPECT_EQ(s.set_by_comm, "init");
    EXPECT_EQ(s.locked_at_ms, 2344);
    EXPECT_EQ(s.locked_at_wall, "2024-05-01T10:00:02Z");
    EXPECT_EQ(s.modules.size(), 5u);
    EXPECT_TRUE(kernel.Calls().empty());  // an offline root never asks the kernel
}

// --- peinitctl lock ----------------------------------------------------------------------------

TEST(RuntimeLock, PrivilegedLocks) {
    FakeKernel kernel;
    std::ostringstream out, err;
    EXPECT_EQ(RunRuntimeLock(kernel, false, out, err), 0) << err.str();
    EXPECT_TRUE(kernel.IsLocked());
    EXPECT_EQ(kernel.LockTrigger(), MODULE_LOCKDOWN_TRIGGER_RUNTIME);
    EXPECT_NE(out.str().find("trigger runtime-syscall"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("module_lockdown(QUERY)=1"), std::string::npos) << out.str();
    // Again: a no-op that still succeeds.
    std::ostringstream out2;
    EXPECT_EQ(RunRuntimeLock(kernel, false, out2, err), 0);
    EXPECT_NE(out2.str().find("already locked"), std::string::npos) << out2.str();
}

TEST(RuntimeLock, UnprivilegedIsRefused) {
    FakeKernel kernel;
    kernel.SetPrivileged(false);
    std::ostringstream out, err;
    EXPECT_EQ(RunRuntimeLock(kernel, false, out, err), 1);
    EXPECT_FALSE(kernel.IsLocked());
    EXPECT_EQ(kernel.Sysctl("kernel/module_loading_locked"), "0");
    EXPECT_EQ(
        err.str().rfind("peinitctl: lock refused: SeTcbPrivilege (CAP_SYS_ADMIN) required\n", 0),
        0u)
        << err.str();
}

TEST(RuntimeLock, UnpatchedWithoutFallbackChangesNothing) {
    FakeKernel kernel;
    kernel.SetUnpatched(true);
    std::ostringstream out, err;
    EXPECT_EQ(RunRuntimeLock(kernel, false, out, err), 1);
    EXPECT_NE(err.str().find("kernel.modules_disabled=1"), std::string::npos) << err.str();
    EXPECT_NE(err.str().find("--fallback"), std::string::npos);
    EXPECT_TRUE(kernel.Calls(KernelOp::kWriteSysctl).empty());
    EXPECT_NE(kernel.Sysctl("kernel/modules_disabled"), "1");
}

TEST(RuntimeLock, UnpatchedWithFallbackDisablesModules) {
    FakeKernel kernel;
    kernel.SetUnpatched(true);
    kernel.SetSysctl("kernel/modprobe", "/sbin/modprobe");
    std::ostringstream out, err;
    EXPECT_EQ(RunRuntimeLock(kernel, true, out, err), 0) << err.str();
    EXPECT_EQ(kernel.Sysctl("kernel/modules_disabled"), "1");
    EXPECT_EQ(kernel.Sysctl("kernel/modprobe").value_or("x"), "");
    EXPECT_NE(out.str().find("fallback"), std::string::npos);
    // Issue 15: modules_disabled leaves no kernel audit record: peinitctl sends its own.
    auto audit = kernel.Calls(KernelOp::kAudit);
    ASSERT_EQ(audit.size(), 1u);
    EXPECT_EQ(audit[0].name, "1127");
    EXPECT_EQ(audit[0].args, "op=module-lockdown-fallback mechanism=modules_disabled "
                             "trigger=runtime-syscall res=success");
    EXPECT_NE(out.str().find("audit record: sent"), std::string::npos) << out.str();
}

// Issue 15: kernel.modules_disabled only asks for CAP_SYS_MODULE; the fallback lock is SeTcb's
// like LOCK, so peinitctl checks CAP_SYS_ADMIN itself before writing anything.
TEST(RuntimeLock, FallbackNeedsSeTcbItself) {
    FakeKernel kernel;
    kernel.SetUnpatched(true);
    kernel.SetPrivileged(false);
    std::ostringstream out, err;
    EXPECT_EQ(RunRuntimeLock(kernel, true, out, err), 1);
    EXPECT_EQ(err.str(),
              "peinitctl: lock refused: SeTcbPrivilege (CAP_SYS_ADMIN) required, for the "
              "fallback as for module_lockdown(2); nothing was changed\n");
    EXPECT_TRUE(kernel.Calls(KernelOp::kWriteSysctl).empty());
    EXPECT_EQ(kernel.Sysctl("kernel/modules_disabled"), "0");
}

TEST(RuntimeLock, FallbackWithoutAuditStillLocks) {
    FakeKernel kernel;
    kernel.SetUnpatched(true);
    kernel.SetAuditAvailable(false);
    std::ostringstream out, err;
    EXPECT_EQ(RunRuntimeLock(kernel, true, out, err), 0) << err.str();
    EXPECT_EQ(kernel.Sysctl("kernel/modules_disabled"), "1");
    EXPECT_NE(out.str().find("audit record: not available (the kernel has no audit)"),
              std::string::npos)
        << out.str();
}

}  // namespace
}  // namespace peinit

namespace peinit {
namespace {

// Measured boot in status (R-33): the PCR, the events, the module set, or "not measured".
TEST(Status, MeasuredBootSectionAndJson) {
    MeasurementRecord m;
    m.state = MeasurementRecord::kMeasured;
    m.tpm = "device:/dev/tpmrm0";
    m.pcr = 13;
    m.log = "/run/log/systemd/tpm2-measure.log";
    m.module_count = 2;
    m.module_set_sha256 = std::string(64, 'c');
    m.events.push_back({13, "peinit", "image", R"({"event":"image","v":1})", "aa"});
    StatusInputs in = LockedBoot();
    in.measurement = Rec("measurements.json", m.ToJson());
    Status s = BuildStatus(in);
    EXPECT_TRUE(s.problems.empty());
    const std::string text = RenderStatusText(s);
    EXPECT_NE(text.find("Measured boot:\n  state            measured\n"
                        "  PCR              13 (SHA-256 bank, TPM device:/dev/tpmrm0)\n"
                        "  events           1 in /run/log/systemd/tpm2-measure.log\n"
                        "  module set       2 modules, SHA-256 " +
                        std::string(64, 'c') + "\n"),
              std::string::npos)
        << text;
    const std::string json = RenderStatusJson(s);
    EXPECT_NE(json.find("\"measurement\""), std::string::npos) << json;
    EXPECT_NE(json.find("\"module_set_sha256\""), std::string::npos) << json;

    MeasurementRecord none;
    none.reason = "no TPM";
    in.measurement = Rec("measurements.json", none.ToJson());
    s = BuildStatus(in);
    EXPECT_NE(RenderStatusText(s).find("Measured boot:\n  state            not measured: no TPM\n"),
              std::string::npos)
        << RenderStatusText(s);

    m.state = MeasurementRecord::kFailed;
    m.error = "TPM device:/dev/tpmrm0: PCR_Extend of PCR 13: timeout";
    in.measurement = Rec("measurements.json", m.ToJson());
    s = BuildStatus(in);
    EXPECT_NE(RenderStatusText(s).find("  TPM error        " + m.error), std::string::npos);
    ASSERT_EQ(s.problems.size(), 1u);
    EXPECT_EQ(s.problems[0], "measured boot stopped: " + m.error);
    EXPECT_EQ(s.ExitCode(), 1);
}

}  // namespace
}  // namespace peinit
