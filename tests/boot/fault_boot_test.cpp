// Fault injection at boot (issue 9): one QEMU boot per fault, each image in
// tests/boot/images/fault-<case>/. Every case asserts the same four things:
//   (a) the defined end state: which modules are live (/proc/modules, printed by modules_probe)
//       and what the module stage's record (/run/peinit/modules.json) says about each;
//   (b) PID 1 survived: the boot reached its services (the last one powers off in order) or,
//       for a fatal configuration error, the emergency path powered off in order; QEMU exits 0
//       by itself and the kernel never says "Attempted to kill init" or panics;
//   (c) the lock is applied where the policy requires it: module_loading_locked (or, on
//       Debian's unpatched kernel, modules_disabled) reads 1 (policy_probe) and status says so;
//   (d) status explains what happened: `peinitctl status` and `peinitctl modules --failed`, run
//       by a service (tests/boot/images/fault-probe), name the cause; on the emergency path,
//       the same status printed by PID 1 on the console before it powers off.
// Each image.toml may use @KDIR@ / @KVER@ (the kernel directory and release) and @SCRATCH@ (a
// per-test scratch directory); the test appends the probe programs as [[files]].
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "image_boot.h"
#include "tests/json_at.h"

#ifndef PEINIT_SOURCE_DIR
#error "PEINIT_SOURCE_DIR must be defined"
#endif
#ifndef PEINIT_PKG_TOOL
#error "PEINIT_PKG_TOOL must be defined"
#endif
#ifndef POLICY_PROBE_PATH
#error "POLICY_PROBE_PATH must be defined"
#endif
#ifndef MODULES_PROBE_PATH
#error "MODULES_PROBE_PATH must be defined"
#endif
#ifndef ON_CHANNEL_PATH
#error "ON_CHANNEL_PATH must be defined"
#endif

namespace fs = std::filesystem;

namespace peinit::testing {
namespace {


struct ModuleRecord {
    std::string status, errno_name, reason, package;
};

struct FaultBoot {
    ImageBootResult r;
    std::map<std::string, Section> sections;  // "status", "failed"
    // policy_probe's "PROBE name ok|FAIL detail" lines (not modules_probe's "MODULES_PROBE").
    std::map<std::string, std::string> probes;
    std::map<std::string, std::string> proc_modules;  // name -> state
    bool modules_probe_done = false;
    std::string record_text;  // /run/peinit/modules.json as printed
    bool record_parsed = false;
    std::map<std::string, ModuleRecord> record;  // module name -> its outcome
    std::map<std::string, long> summary;         // "ok", "failed", ...
    Section emergency_status;                    // PID 1's "emergency: status: " lines

    std::string Console() const { return Explain(r); }
};

// Builds tests/boot/images/<name> for `kernel` ("peinit" or "debian"), boots it and parses what
// the guest printed. `scratch` replaces @SCRATCH@.
FaultBoot Boot(const std::string& name, const std::string& kernel = "peinit",
               const std::string& scratch = "", const std::string& append = "") {
    FaultBoot f;
    const std::string kdir = KernelDirFor(kernel);
    if (kdir.empty()) {
        f.r.build_error = "no kernel directory for " + kernel +
                          ": set PEINIT_KERNEL_DIR / PEINIT_DEBIAN_KERNEL_DIR";
        return f;
    }
    std::string kver = ReadFile((fs::path(kdir) / "kver").string());
    while (!kver.empty() && (kver.back() == '\n' || kver.back() == ' ')) kver.pop_back();
    std::string toml =
        ReadFile((fs::path(PEINIT_SOURCE_DIR) / "tests/boot/images" / name / "image.toml").string());
    ReplaceAll(toml, "@KDIR@", kdir);
    ReplaceAll(toml, "@KVER@", kver);
    ReplaceAll(toml, "@SCRATCH@", scratch);
    for (const auto& [src, dst] : std::vector<std::pair<std::string, std::string>>{
             {"/bin/dash", "/bin/sh"},
             {POLICY_PROBE_PATH, "/usr/bin/policy_probe"},
             {MODULES_PROBE_PATH, "/usr/bin/modules_probe"},
             {ON_CHANNEL_PATH, "/usr/bin/on_channel"}}) {
        toml += "\n[[files]]\nsrc = \"" + src + "\"\ndst = \"" + dst + "\"\n";
    }

    ImageBoot boot;
    boot.name = name;
    boot.image_toml = toml;
    boot.kernel = kernel;
    boot.append = append;
    boot.smp = 2;
    // TCG on a shared 2-core host: a boot takes 20-90 s; leave room under ctest's 400 s.
    boot.timeout = std::chrono::seconds(330);
    f.r = BuildAndBoot(boot);
    std::cerr << "[ boot ] " << name << ": " << f.r.qemu.describe() << "\n";

    // PID 1's emergency status is on the console; everything the services printed is on the
    // results channel, each line starting with its keyword.
    const std::string emergency = "peinit: emergency: status: ";
    for (const auto& line : f.r.qemu.lines()) {
        if (size_t at = line.find(emergency); at != std::string::npos) {
            f.emergency_status.lines.push_back(line.substr(at + emergency.size()));
        }
    }
    f.sections = ResultSections(f.r.qemu.result_lines(), "FAULT", [&](const std::string& line) {
        if (line.starts_with("PROBE ")) {
            std::istringstream in(line.substr(6));
            std::string probe, result;
            in >> probe;
            std::getline(in >> std::ws, result);
            f.probes[probe] = result;
        } else if (line.starts_with("PROC_MODULE ")) {
            std::istringstream in(line.substr(12));
            std::string name, state;
            in >> name >> state;
            f.proc_modules[name] = state;
        } else if (line.starts_with("RECORD ")) {
            f.record_text += line.substr(7) + "\n";
        } else if (line == "MODULES_PROBE done") {
            f.modules_probe_done = true;
        }
    });
    if (!f.record_text.empty()) {
        SCOPED_TRACE("modules.json as the probe printed it");
        peinit::testing::TestJson t(f.record_text);  // a parse error is a test failure
        if (t.ok()) {
            for (std::size_t i = 0; i < t.Size("modules"); ++i) {
                const std::string at = "modules." + std::to_string(i) + ".";
                f.record[t.Str(at + "name")] = {t.Str(at + "status"), t.Str(at + "errno"),
                                                t.Str(at + "reason"), t.Str(at + "package")};
            }
            for (const std::string& k : t.At("summary").Keys()) {
                f.summary[k] = t.Int("summary." + k);
            }
            f.record_parsed = true;
        }
    }
    return f;
}

void ExpectNoKernelDeath(const FaultBoot& f) {
    EXPECT_FALSE(f.r.Has("Attempted to kill init")) << f.Console();
    EXPECT_FALSE(f.r.Has("Kernel panic")) << f.Console();
    EXPECT_TRUE(f.r.qemu.clean_exit()) << f.Console();
}

// (b) for a boot that completed: every stage ran, the services ran in order (the last one is
// modules_probe), and its exit_action powered the machine off in order.
void ExpectBootedToServices(const FaultBoot& f) {
    EXPECT_TRUE(f.r.Has("peinit: boot complete")) << f.Console();
    EXPECT_FALSE(f.r.Has("peinit: emergency")) << f.Console();
    EXPECT_FALSE(f.r.Results("PROBE-DONE").empty()) << "policy_probe did not finish\n" << f.Console();
    EXPECT_TRUE(f.sections.count("status")) << "peinitctl status did not run\n" << f.Console();
    EXPECT_TRUE(f.modules_probe_done) << f.Console();
    EXPECT_TRUE(f.r.Has("peinit: shutdown: poweroff (service exit_action)")) << f.Console();
    EXPECT_TRUE(f.r.Has("peinit: shutdown: poweroff now")) << f.Console();
    ExpectNoKernelDeath(f);
}

// (b) for a fatal error: the emergency path powered off in order, nothing else ran.
void ExpectEmergencyPowerOff(const FaultBoot& f) {
    EXPECT_TRUE(f.r.Has("peinit: emergency: powering off")) << f.Console();
    EXPECT_TRUE(f.r.Has("peinit: shutdown: poweroff (emergency)")) << f.Console();
    EXPECT_TRUE(f.r.Has("peinit: shutdown: poweroff now")) << f.Console();
    EXPECT_FALSE(f.r.Has("peinit: boot complete")) << f.Console();
    EXPECT_FALSE(f.r.Has("peinit: stage modules start")) << f.Console();
    EXPECT_FALSE(f.r.Has("started pid=")) << "a service started\n" << f.Console();
    EXPECT_FALSE(f.modules_probe_done) << f.Console();
    ExpectNoKernelDeath(f);
}

// Every policy_probe check named ran and passed, and no other check failed.
void ExpectProbes(const FaultBoot& f, const std::vector<std::string>& names) {
    for (const auto& n : names) {
        auto it = f.probes.find(n);
        if (it == f.probes.end()) {
            ADD_FAILURE() << "probe " << n << " did not run\n" << f.Console();
        } else {
            EXPECT_EQ(it->second, "ok") << "probe " << n;
        }
    }
    for (const auto& [n, v] : f.probes) EXPECT_EQ(v, "ok") << "probe " << n;
}

// (c) on the patched kernel, as `peinitctl status` (or the emergency status) shows it.
void ExpectStatusLocked(const Section& status) {
    EXPECT_TRUE(status.Has("lock             locked (module_lockdown syscall)")) << status.Text();
}

// (d) `peinitctl status` ran, exited with `rc`, and its problem lines are exactly `problems`
// (prefixes; in order). An empty list: "Problems:" must not be printed at all.
void ExpectStatusProblems(const FaultBoot& f, int rc, const std::vector<std::string>& problems) {
    const Section& s = f.sections.count("status") ? f.sections.at("status") : Section();
    EXPECT_EQ(s.rc, rc) << s.Text();
    std::vector<std::string> got;
    for (const auto& l : s.lines) {
        if (l.rfind("  ! ", 0) == 0) got.push_back(l.substr(4));
    }
    EXPECT_EQ(s.Has("Problems:"), !problems.empty()) << s.Text();
    ASSERT_EQ(got.size(), problems.size()) << s.Text();
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].rfind(problems[i], 0), 0u)
            << "problem " << i << ": \"" << got[i] << "\" should start with \"" << problems[i]
            << "\"\n"
            << s.Text();
    }
}

// (d) `peinitctl modules --failed` lists exactly these modules (name -> text on its row).
void ExpectFailedList(const FaultBoot& f, int rc, const std::map<std::string, std::string>& rows) {
    const Section& s = f.sections.count("failed") ? f.sections.at("failed") : Section();
    EXPECT_EQ(s.rc, rc) << s.Text();
    ASSERT_FALSE(s.lines.empty()) << f.Console();
    EXPECT_EQ(s.lines.front().find("START"), 0u) << s.Text();
    EXPECT_EQ(s.lines.size(), rows.size() + 1) << s.Text();
    for (const auto& [name, text] : rows) {
        std::string row = s.Line(" " + name + " ");
        EXPECT_NE(row.find(text), std::string::npos)
            << name << ": \"" << row << "\" should contain \"" << text << "\"\n"
            << s.Text();
    }
}

// --- the eight cases ----------------------------------------------------------------------

// 1. A module whose init fails (peinit_test_fail: -ENODEV): recorded failed with its errno, not
// live; the rest of the set loads; the lock is applied anyway (R-13, R-17).
TEST(FaultBoot, FailingModuleInit) {
    FaultBoot f = Boot("fault-failing-module");
    ASSERT_TRUE(f.r.build_error.empty()) << f.r.build_error;
    ExpectBootedToServices(f);
    // (a)
    ASSERT_TRUE(f.record_parsed) << f.Console();
    EXPECT_EQ(f.proc_modules.count("peinit_test_fail"), 0u);
    EXPECT_EQ(f.record["peinit_test_fail"].status, "failed");
    EXPECT_EQ(f.record["peinit_test_fail"].errno_name, "ENODEV");
    EXPECT_EQ(f.proc_modules["peinit_test_provider"], "Live");
    EXPECT_EQ(f.record["peinit_test_provider"].status, "loaded");
    EXPECT_EQ(f.proc_modules["dummy"], "Live");
    EXPECT_EQ(f.summary["ok"], 2) << f.record_text;
    EXPECT_EQ(f.summary["failed"], 1) << f.record_text;
    EXPECT_TRUE(f.r.Has("peinit: module peinit_test_fail failed: ")) << f.Console();
    // (c)
    ExpectProbes(f, {"locked", "fail_absent", "provider_live"});
    EXPECT_TRUE(f.r.Has("peinit: lockdown locked=1 mechanism=syscall trigger=registry"));
    ExpectStatusLocked(f.sections["status"]);
    // (d)
    ExpectStatusProblems(f, 1, {"module peinit_test_fail failed: ENODEV"});
    ExpectFailedList(f, 1, {{"peinit_test_fail", "failed"}});
    EXPECT_NE(f.sections["failed"].Line("peinit_test_fail").find("ENODEV"), std::string::npos)
        << f.sections["failed"].Text();
}

// 1b. The same driver, loaded "if the hardware is present" (issue 16): its ENODEV is the
// outcome no-device, not a problem; status exits 0 and says so.
TEST(FaultBoot, AbsentHardwareIsNoDeviceNotAProblem) {
    FaultBoot f = Boot("fault-absent-hardware");
    ASSERT_TRUE(f.r.build_error.empty()) << f.r.build_error;
    ExpectBootedToServices(f);
    ASSERT_TRUE(f.record_parsed) << f.Console();
    EXPECT_EQ(f.proc_modules.count("peinit_test_fail"), 0u);
    EXPECT_EQ(f.record["peinit_test_fail"].status, "no-device");
    EXPECT_EQ(f.record["peinit_test_fail"].errno_name, "ENODEV");
    EXPECT_EQ(f.record["peinit_test_provider"].status, "loaded");
    EXPECT_EQ(f.summary["ok"], 2) << f.record_text;
    EXPECT_EQ(f.summary["failed"], 0) << f.record_text;
    EXPECT_EQ(f.summary["no_device"], 1) << f.record_text;
    EXPECT_TRUE(f.r.Has("peinit: module peinit_test_fail: no device present, not loaded "
                        "(if_hardware_present)"))
        << f.Console();
    EXPECT_FALSE(f.r.Has("peinit: module peinit_test_fail failed")) << f.Console();
    ExpectProbes(f, {"locked", "fail_absent", "provider_live"});
    ExpectStatusLocked(f.sections["status"]);
    ExpectStatusProblems(f, 0, {});
    EXPECT_TRUE(f.sections["status"].Has("1 no device")) << f.sections["status"].Text();
}

// 2. A unit names a module the kernel does not have: recorded missing (a failure: it was not
// optional), everything else loads, the lock is applied.
TEST(FaultBoot, MissingModule) {
    FaultBoot f = Boot("fault-missing-module");
    ASSERT_TRUE(f.r.build_error.empty()) << f.r.build_error;
    ExpectBootedToServices(f);
    // (a)
    ASSERT_TRUE(f.record_parsed) << f.Console();
    EXPECT_EQ(f.record["peinit_test_absent"].status, "missing");
    const std::string why = "no module or alias named peinit_test_absent in the module tree";
    EXPECT_EQ(f.record["peinit_test_absent"].reason, why);
    EXPECT_EQ(f.proc_modules.count("peinit_test_absent"), 0u);
    EXPECT_EQ(f.proc_modules["peinit_test_provider"], "Live");
    EXPECT_EQ(f.record["peinit_test_provider"].status, "loaded");
    EXPECT_EQ(f.summary["ok"], 1) << f.record_text;
    EXPECT_EQ(f.summary["failed"], 1) << f.record_text;
    EXPECT_TRUE(
        f.r.Has("peinit: module peinit_test_absent missing: " + why + ", wanted by unit missing"))
        << f.Console();
    // (c)
    ExpectProbes(f, {"locked", "absent_not_loaded", "provider_live"});
    ExpectStatusLocked(f.sections["status"]);
    // (d)
    ExpectStatusProblems(f, 1, {"module peinit_test_absent missing: " + why});
    ExpectFailedList(f, 1, {{"peinit_test_absent", "missing"}});
    EXPECT_NE(f.sections["failed"].Line("peinit_test_absent").find(why), std::string::npos)
        << f.sections["failed"].Text();
}

// 3. Two units ordered after each other. A cycle is a unit error (units/SCHEMA.md), so the
// boot-time module set is undefined: the config stage fails (fatal), PID 1 takes the emergency
// path: it names the cycle, locks (LockAfterBoot=true; fail closed), prints the status that
// explains it and powers off. Nothing loads, no service starts.
TEST(FaultBoot, UnitCycle) {
    FaultBoot f = Boot("fault-unit-cycle");
    ASSERT_TRUE(f.r.build_error.empty()) << f.r.build_error;
    ExpectEmergencyPowerOff(f);
    // (a): every unit of the cycle is named with it; their modules (shipped in the image)
    // never load.
    EXPECT_TRUE(
        f.r.Has("peinit: /etc/peinit/units/cycle-a.toml:2: ordering cycle: cycle-a -> "
                "cycle-b -> cycle-a"))
        << f.Console();
    EXPECT_TRUE(
        f.r.Has("peinit: /etc/peinit/units/cycle-b.toml:2: ordering cycle: cycle-b -> "
                "cycle-a -> cycle-b"))
        << f.Console();
    EXPECT_TRUE(f.r.Has("peinit: stage config done failed")) << f.Console();
    EXPECT_FALSE(f.r.Has("peinit_test_provider: loaded")) << f.Console();
    EXPECT_FALSE(f.r.Has("peinit_test_consumer: loaded")) << f.Console();
    // (c)
    auto lock_lines = f.r.Grep("module_lockdown: locked by pid=1");
    ASSERT_EQ(lock_lines.size(), 1u) << f.Console();
    EXPECT_NE(lock_lines[0].find("trigger=registry"), std::string::npos) << lock_lines[0];
    ExpectStatusLocked(f.emergency_status);
    // (d): the status PID 1 printed, the emergency first.
    const Section& s = f.emergency_status;
    ASSERT_FALSE(s.lines.empty()) << f.Console();
    EXPECT_EQ(s.lines[0], "Problems:") << s.Text();
    EXPECT_EQ(
        s.Line("  ! ").rfind("  ! boot stopped on the emergency path: stage config: 2 "
                             "error(s) in unit files, first: /etc/peinit/units/cycle-a.toml:2: "
                             "ordering cycle: cycle-a -> cycle-b -> cycle-a",
                             0),
        0u)
        << s.Text();
    EXPECT_TRUE(s.Has("LockAfterBoot    true (hive)")) << s.Text();
    EXPECT_TRUE(s.Has("missing: not attempted, the boot stopped in stage config")) << s.Text();
}

// 4. A unit wants peinit_test_consumer, whose hard dependency peinit_test_provider is blacklisted
// in /etc/modprobe.d: deny means deny (R-12). The provider is blacklisted (never attempted),
// the consumer skipped naming the blacklisted dependency and the blacklist line, neither is
// live; dummy loads; the lock is applied. A configured denial is not a problem for status.
TEST(FaultBoot, BlacklistedDependency) {
    FaultBoot f = Boot("fault-blacklisted-dependency");
    ASSERT_TRUE(f.r.build_error.empty()) << f.r.build_error;
    ExpectBootedToServices(f);
    // (a)
    ASSERT_TRUE(f.record_parsed) << f.Console();
    const std::string why = "/etc/modprobe.d/fault.conf:2 blacklist peinit_test_provider";
    EXPECT_EQ(f.record["peinit_test_provider"].status, "blacklisted");
    EXPECT_EQ(f.record["peinit_test_provider"].reason, why);
    EXPECT_EQ(f.record["peinit_test_consumer"].status, "skipped");
    const std::string skipped = "dependency peinit_test_provider is blacklisted (" + why +
                                ") via unit fault -> peinit_test_consumer";
    EXPECT_EQ(f.record["peinit_test_consumer"].reason, skipped);
    EXPECT_EQ(f.proc_modules.count("peinit_test_provider"), 0u);
    EXPECT_EQ(f.proc_modules.count("peinit_test_consumer"), 0u);
    EXPECT_EQ(f.proc_modules["dummy"], "Live");
    EXPECT_EQ(f.summary["ok"], 1) << f.record_text;
    EXPECT_EQ(f.summary["failed"], 0) << f.record_text;
    EXPECT_EQ(f.summary["blacklisted"], 1) << f.record_text;
    EXPECT_EQ(f.summary["skipped"], 1) << f.record_text;
    EXPECT_FALSE(f.r.Has("peinit_test_provider: loaded")) << f.Console();
    // (c)
    ExpectProbes(f, {"locked", "provider_absent", "consumer_absent", "dummy_live"});
    ExpectStatusLocked(f.sections["status"]);
    // (d): no problem (the denial is configured), but the module rows say why.
    ExpectStatusProblems(f, 0, {});
    const Section& status = f.sections["status"];
    // The module row (indented; the Notes name the consumer too).
    EXPECT_NE(status.Line("    peinit_test_consumer").find("skipped"), std::string::npos)
        << status.Text();
    EXPECT_NE(status.Line("    peinit_test_consumer").find(skipped), std::string::npos)
        << status.Text();
    EXPECT_NE(status.Line("    peinit_test_provider").find("blacklisted    0.0 ms  " + why),
              std::string::npos)
        << status.Text();
    ExpectFailedList(f, 0,
                     {{"peinit_test_provider", "blacklisted"}, {"peinit_test_consumer", skipped}});
}

// 5. A unit that fails validation at boot (planted past the builder): the emergency path names
// the error, still locks (the hive asks for it, and failing closed is the rule), prints the
// status that explains it, powers off; no service, no kernel panic.
// (Moved from Pid1Boot.BrokenUnitTakesTheEmergencyPath, every assertion kept.)
TEST(FaultBoot, MalformedUnit) {
    FaultBoot f = Boot("fault-malformed-unit");
    ASSERT_TRUE(f.r.build_error.empty()) << f.r.build_error;
    ExpectEmergencyPowerOff(f);
    // (a)
    EXPECT_TRUE(f.r.Has("zz-broken.toml:5: unknown key \"modlues\" in [[module]]")) << f.Console();
    EXPECT_TRUE(f.r.Has("peinit: stage config done failed")) << f.Console();
    EXPECT_TRUE(f.r.Has("peinit: emergency: stage config:")) << f.Console();
    EXPECT_FALSE(f.r.Has("service never started")) << f.Console();
    // (c)
    EXPECT_TRUE(f.r.Has("module_lockdown: locked by pid=1")) << f.Console();
    ExpectStatusLocked(f.emergency_status);
    // (d)
    const Section& s = f.emergency_status;
    ASSERT_FALSE(s.lines.empty()) << f.Console();
    EXPECT_EQ(s.lines[0], "Problems:") << s.Text();
    EXPECT_EQ(s.Line("  ! ").rfind("  ! boot stopped on the emergency path: stage config: 1 "
                                   "error(s) in unit files, first: "
                                   "/etc/peinit/units/zz-broken.toml:5: unknown key \"modlues\" "
                                   "in [[module]]",
                                   0),
              0u)
        << s.Text();
    EXPECT_TRUE(s.Has("missing: not attempted, the boot stopped in stage config")) << s.Text();
}

// 6. A hive with a wrong type (LockAfterBoot = 1.5): the hardened fallback (R-01): locked after
// boot, demand loads disabled, and status says the hive was not usable.
// (Moved from LockdownBoot.MalformedHiveFallsBackHardened, every assertion kept.)
TEST(FaultBoot, MalformedHive) {
    FaultBoot f = Boot("fault-malformed-hive");
    ASSERT_TRUE(f.r.build_error.empty()) << f.r.build_error;
    ExpectBootedToServices(f);
    // (a)
    ASSERT_TRUE(f.record_parsed) << f.Console();
    EXPECT_EQ(f.proc_modules["loop"], "Live");
    EXPECT_EQ(f.record["loop"].status, "loaded");
    EXPECT_EQ(f.proc_modules.count("peinit_test_provider"), 0u);
    EXPECT_EQ(f.proc_modules.count("af_packet"), 0u);
    EXPECT_TRUE(f.r.Has("applying the hardened fallback")) << f.Console();
    EXPECT_TRUE(f.r.Has("autoload policy=disabled(fallback)")) << f.Console();
    EXPECT_FALSE(f.r.Has("peinit-modprobe:")) << f.Console();
    // (c)
    ExpectProbes(
        f, {"locked", "helper_empty", "packet_eafnosupport", "finit_eperm", "record_fallback"});
    EXPECT_TRUE(f.r.Has("lockdown locked=1 mechanism=syscall")) << f.Console();
    ExpectStatusLocked(f.sections["status"]);
    // (d)
    ExpectStatusProblems(f, 1,
                         {"hive /etc/peinit/hive.toml not usable, hardened fallback "
                          "applied: /etc/peinit/hive.toml:2: "});
    const Section& status = f.sections["status"];
    EXPECT_NE(status.Line("  ! hive").find("LockAfterBoot"), std::string::npos) << status.Text();
    EXPECT_TRUE(status.Has("LockAfterBoot    true (fallback)")) << status.Text();
    EXPECT_TRUE(status.Has("AutoLoadPolicy   disabled (fallback)")) << status.Text();
    EXPECT_TRUE(status.Has("kernel.modprobe  (empty)")) << status.Text();
    ExpectFailedList(f, 0, {});
}

// 7. A pre-built package signed by a key the image does not trust: nothing in it loads (R-10),
// its module is failed naming the package and the reason, the image package's module loads,
// the lock is applied. (ModulesBoot.TamperedPackageIsRejectedGoodOneLoads covers a hash
// mismatch; this is the other rejection, an untrusted signer.)
TEST(FaultBoot, RejectedPackage) {
    const std::string kdir = KernelDirFor("peinit");
    ASSERT_FALSE(kdir.empty()) << "PEINIT_KERNEL_DIR is not set";
    ScratchDir tmp;
    ASSERT_FALSE(tmp.path.empty());
    std::string kver = ReadFile((fs::path(kdir) / "kver").string());
    while (!kver.empty() && kver.back() == '\n') kver.pop_back();
    const std::string pkg = std::string("'") + PEINIT_PKG_TOOL + "'";
    std::string log;
    ASSERT_EQ(Sh(pkg + " keygen --out-dir " + tmp.path + " --name stranger", log), 0) << log;
    ASSERT_EQ(Sh(pkg + " create --name untrusted --version 1 --kver " + kver + " --sign-key " +
                     tmp.path + "/stranger.key -o " + tmp.path + "/untrusted.pkg " + kdir +
                     "/test-modules/peinit_test_slow1.ko",
                 log),
              0)
        << log;
    // The package itself is sound: it verifies against its own key.
    ASSERT_EQ(Sh(pkg + " verify --trust " + tmp.path + " " + tmp.path + "/untrusted.pkg", log), 0)
        << log;

    FaultBoot f = Boot("fault-rejected-package", "peinit", tmp.path);
    ASSERT_TRUE(f.r.build_error.empty()) << f.r.build_error;
    ExpectBootedToServices(f);
    // (a)
    ASSERT_TRUE(f.record_parsed) << f.Console();
    EXPECT_TRUE(f.r.Has("package untrusted.pkg rejected: untrusted-key")) << f.Console();
    EXPECT_EQ(f.record["peinit_test_slow1"].status, "failed");
    EXPECT_EQ(f.record["peinit_test_slow1"].reason.rfind(
                  "package rejected (untrusted.pkg: untrusted-key", 0),
              0u)
        << f.record["peinit_test_slow1"].reason;
    EXPECT_EQ(f.proc_modules.count("peinit_test_slow1"), 0u);
    EXPECT_FALSE(f.r.Has("peinit_test_slow1: ")) << "its init ran\n" << f.Console();
    EXPECT_EQ(f.proc_modules["dummy"], "Live");
    EXPECT_EQ(f.record["dummy"].package, "image.pkg");
    EXPECT_EQ(f.summary["ok"], 1) << f.record_text;
    EXPECT_EQ(f.summary["failed"], 1) << f.record_text;
    // (c)
    ExpectProbes(f, {"locked", "slow1_absent", "dummy_live"});
    ExpectStatusLocked(f.sections["status"]);
    // (d)
    ExpectStatusProblems(
        f, 1, {"module peinit_test_slow1 failed: package rejected (untrusted.pkg: untrusted-key"});
    ExpectFailedList(f, 1,
                     {{"peinit_test_slow1", "package rejected (untrusted.pkg: untrusted-key"}});
}

// 8. Debian's unpatched kernel has no module_lockdown(2): LockAfterBoot=true falls back to
// kernel.modules_disabled=1 with an empty kernel.modprobe (R-18); later loads fail with EPERM
// and status names the mechanism.
// (Moved from LockdownBoot.DebianKernelFallsBackToModulesDisabled, every assertion kept.)
TEST(FaultBoot, MissingLockSyscall) {
    // audit=1: without auditd the kernel prints user-space audit records to the console.
    FaultBoot f = Boot("fault-missing-lock-syscall", "debian", "", "audit=1");
    ASSERT_TRUE(f.r.build_error.empty()) << f.r.build_error;
    ExpectBootedToServices(f);
    // (a)
    ASSERT_TRUE(f.record_parsed) << f.Console();
    EXPECT_EQ(f.proc_modules["dummy"], "Live");
    EXPECT_EQ(f.record["dummy"].status, "loaded");
    EXPECT_EQ(f.summary["failed"], 0) << f.record_text;
    EXPECT_TRUE(f.r.Has("module_lockdown(2) is not available (unpatched kernel)")) << f.Console();
    // (c)
    ExpectProbes(f, {"modules_disabled", "helper_empty", "dummy_loaded", "finit_eperm",
                     "init_eperm", "delete_eperm", "record_mechanism"});
    EXPECT_TRUE(f.r.Has("mechanism=modules_disabled")) << f.Console();
    EXPECT_FALSE(f.r.Has("module_lockdown: locked")) << f.Console();
    // Issue 15: modules_disabled has no kernel audit record; PID 1 sends a user-space one.
    EXPECT_TRUE(f.r.Has("op=module-lockdown-fallback mechanism=modules_disabled "
                        "trigger=boot-orchestrator-step res=success"))
        << f.Console();
    // (d)
    ExpectStatusProblems(f, 0, {});
    const Section& status = f.sections["status"];
    EXPECT_TRUE(status.Has("  - module_lockdown(2) is not available: unpatched kernel"))
        << status.Text();
    EXPECT_TRUE(status.Has("lock             locked (kernel.modules_disabled fallback)"))
        << status.Text();
    EXPECT_TRUE(
        status.Has("set by           pid 1 (peinit), trigger boot-orchestrator-step "
                   "[record]"))
        << status.Text();
    EXPECT_TRUE(status.Has("kernel.modprobe  (empty)")) << status.Text();
    // Issue 15: PID 1 mounts securityfs, so Debian's lockdown LSM level is read, not "not
    // present"; the taint mask is shown.
    EXPECT_TRUE(status.Has("lockdown LSM     none")) << status.Text();
    EXPECT_TRUE(status.Has("tainted          ")) << status.Text();
    ExpectFailedList(f, 0, {});
}

}  // namespace
}  // namespace peinit::testing
