// What a user learns when the boot stops (issue 9, fault injection): a unit ordering cycle is
// a unit error, so the config stage fails, the stage table names the fatal stage, and the
// emergency record (/run/peinit/boot.json, peinit/core/status.h BootRecord) makes the status
// say why, first, whether it is rendered by PID 1 on the console or by `peinitctl status`.

#include <gtest/gtest.h>

#include <stdexcept>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "peinit/core/boot_context.h"
#include "tests/json_at.h"
#include "peinit/core/cmdline.h"
#include "peinit/record/image.h"
#include "peinit/init/pid1.h"
#include "peinit/core/status.h"
#include "tests/fakes/fake_kernel.h"
#include "peinit/sys/status_sources.h"
#include "stages/config/config.h"
#include "stages/stage.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;

class TempRoot {
  public:
    TempRoot() {
        char tmpl[] = "/tmp/peinit-emergency-test.XXXXXX";
        if (mkdtemp(tmpl) != nullptr) path_ = tmpl;
    }
    ~TempRoot() {
        std::error_code ec;
        if (!path_.empty()) fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    void Write(const std::string& rel, const std::string& text) const {
        fs::path p = path_ / rel;
        fs::create_directories(p.parent_path());
        std::ofstream(p) << text;
    }

  private:
    fs::path path_;
};

// A root whose units order cycle-a after cycle-b after cycle-a; `peinit.lock=1` asks for the
// lock (no hive, so the result does not depend on who owns the files).
void WriteCycleRoot(const TempRoot& root) {
    root.Write("proc/cmdline", "console=ttyS0 peinit.lock=1\n");
    root.Write("etc/peinit/units/cycle-a.toml",
               "description = \"a\"\nafter = [\"cycle-b\"]\n[[module]]\nname = \"loop\"\n");
    root.Write("etc/peinit/units/cycle-b.toml",
               "description = \"b\"\nafter = [\"cycle-a\"]\n[[module]]\nname = \"dummy\"\n");
    root.Write("etc/peinit/units/fine.toml",
               "description = \"fine\"\n[[service]]\nname = \"s\"\nexec = [\"/bin/true\"]\n");
}

bool g_after_config_ran = false;
Result<void> MarkRan(BootContext&) {
    g_after_config_ran = true;
    return Ok();
}

// The defined behaviour of an `after` cycle at boot: every unit in it is reported with the
// cycle, and the config stage fails (fatal), with the policy already known, so the emergency
// path locks as the policy asks; no unit from the broken set is used.
TEST(UnitCycleAtBoot, ConfigStageFailsNamingTheCycle) {
    TempRoot root;
    ASSERT_FALSE(root.path().empty());
    WriteCycleRoot(root);
    FakeKernel kernel;
    BootContext ctx(kernel);
    ctx.paths.root = root.path();
    auto result = RunConfig(ctx);
    ASSERT_FALSE(result);
    const std::string message = result.error().message();
    EXPECT_NE(message.find("2 error(s) in unit files"), std::string::npos) << message;
    EXPECT_NE(message.find("cycle-a.toml:2: ordering cycle: cycle-a -> cycle-b -> cycle-a"),
              std::string::npos)
        << message;
    EXPECT_TRUE(ctx.config_loaded);
    EXPECT_TRUE(ctx.policy.lock_after_boot.value);
    EXPECT_TRUE(ctx.units.units.empty());
}

// Issue 22 point 5: the config stage records the image's provenance (/etc/peinit/image.json,
// written by peinit-image) in /run/peinit, where `peinitctl status` shows it after the hand-over;
// a record of a newer major version is left out, and the boot goes on.
TEST(ImageRecordAtBoot, ConfigStageCopiesTheProvenanceAndStatusShowsIt) {
    TempRoot root;
    ASSERT_FALSE(root.path().empty());
    root.Write("proc/cmdline", "console=ttyS0\n");
    root.Write("etc/peinit/units/fine.toml",
               "description = \"fine\"\n[[service]]\nname = \"s\"\nexec = [\"/bin/true\"]\n");
    fs::create_directories(root.path() / "run/peinit");
    ImageInfo info;
    info.generator = "peinit-image 0.1.0";
    info.kernel_release = "6.1.0-57-amd64";
    info.module_mode = "host";
    info.key_fingerprint = std::string(64, 'a');
    info.built = "2026-12-06T00:00:00Z";
    root.Write("etc/peinit/image.json", info.ToJson());
    FakeKernel kernel;
    BootContext ctx(kernel);
    ctx.paths.root = root.path();
    ASSERT_TRUE(RunConfig(ctx));

    StatusInputs in = ReadStatusInputs(kernel, root.path());
    ASSERT_TRUE(in.image.text) << in.image.error;
    Status s = BuildStatus(in);
    ASSERT_TRUE(s.image);
    EXPECT_EQ(s.image->module_mode, "host");
    const std::string text = RenderStatusText(s);
    EXPECT_NE(text.find("kernel           6.1.0-57-amd64"), std::string::npos) << text;
    EXPECT_NE(text.find("modules from     host"), std::string::npos) << text;
    EXPECT_NE(text.find("signing key      SHA-256 " + info.key_fingerprint), std::string::npos)
        << text;
    testing::TestJson json(RenderStatusJson(s));
    EXPECT_EQ(json.Str("image.kernel_release"), "6.1.0-57-amd64");
    EXPECT_EQ(json.Str("image.generator"), "peinit-image 0.1.0");

    // A newer major version is not copied; the boot is not stopped by it.
    const std::string newer =
        R"({"version": 7, "generator": "peinit-image 9.0", "kernel_release": "6.1.0-57-amd64",
            "module_mode": "host", "key_fingerprint": "", "built": ""})";
    root.Write("etc/peinit/image.json", newer);
    fs::remove(root.path() / "run/peinit/image.json");
    ASSERT_TRUE(RunConfig(ctx));
    EXPECT_FALSE(fs::exists(root.path() / "run/peinit/image.json"));

    // And a reader given one says so, naming the file and both versions.
    root.Write("run/peinit/image.json", newer);
    Status s2 = BuildStatus(ReadStatusInputs(kernel, root.path()));
    EXPECT_FALSE(s2.image);
    bool noted = false;
    for (const auto& n : s2.notes) {
        noted = noted || (n.find("run/peinit/image.json: version 7 is newer than this reader's 1") !=
                          std::string::npos);
    }
    EXPECT_TRUE(noted) << RenderStatusText(s2);
}

// The stage table stops at the failed fatal stage and names it for the emergency record.
TEST(UnitCycleAtBoot, StageTableNamesTheFailedStage) {
    TempRoot root;
    ASSERT_FALSE(root.path().empty());
    WriteCycleRoot(root);
    FakeKernel kernel;
    BootContext ctx(kernel);
    ctx.paths.root = root.path();
    g_after_config_ran = false;
    const Stage stages[] = {
        {"config", Criticality::kFatal, RunConfig},
        {"after-config", Criticality::kFatal, MarkRan},
    };
    auto result = RunStages(stages, ctx);
    ASSERT_FALSE(result);
    EXPECT_EQ(ctx.failed_stage, "config");
    EXPECT_EQ(result.error().message().rfind("stage config: ", 0), 0u) << result.error().message();
    EXPECT_FALSE(g_after_config_ran);
}

Result<void> Throws(BootContext&) { throw std::runtime_error("injected"); }

// A stage that throws fails by the table's rules instead of unwinding out of PID 1: a degrade
// stage is logged and the boot goes on, a fatal one stops it with the exception named.
TEST(StageTable, ExceptionsFailTheStageAndNeverEscape) {
    FakeKernel kernel;
    BootContext ctx(kernel);
    g_after_config_ran = false;
    const Stage degrade[] = {
        {"boom", Criticality::kDegrade, Throws},
        {"after", Criticality::kFatal, MarkRan},
    };
    EXPECT_TRUE(RunStages(degrade, ctx));
    EXPECT_TRUE(g_after_config_ran);
    EXPECT_TRUE(ctx.failed_stage.empty());

    g_after_config_ran = false;
    const Stage fatal[] = {
        {"boom", Criticality::kFatal, Throws},
        {"after", Criticality::kFatal, MarkRan},
    };
    auto result = RunStages(fatal, ctx);
    ASSERT_FALSE(result);
    EXPECT_EQ(ctx.failed_stage, "boom");
    EXPECT_EQ(result.error().message(), "stage boom: unexpected exception: injected");
    EXPECT_FALSE(g_after_config_ran);
}

// peinit.emergency=shell never leaves a shell behind a required lock that is not applied.
TEST(EmergencyShell, OnlyBehindTheLockOrWhenNoneIsRequired) {
    FakeKernel kernel;
    BootContext ctx(kernel);
    ctx.cmdline = ParseCmdline("peinit.emergency=shell");
    ctx.config_loaded = false;  // the policy was never read: the lock is required
    EXPECT_FALSE(EmergencyShellAllowed(ctx));
    ctx.lock.locked = true;
    EXPECT_TRUE(EmergencyShellAllowed(ctx));
    ctx.lock.locked = false;
    ctx.config_loaded = true;
    ctx.policy.lock_after_boot.value = true;
    EXPECT_FALSE(EmergencyShellAllowed(ctx));
    ctx.policy.lock_after_boot.value = false;
    EXPECT_TRUE(EmergencyShellAllowed(ctx));
    ctx.cmdline = ParseCmdline("peinit.emergency=poweroff");
    EXPECT_FALSE(EmergencyShellAllowed(ctx));
}

BootRecord CycleEmergency() {
    BootRecord r;
    r.stage = "config";
    r.error =
        "stage config: 2 error(s) in unit files, first: /etc/peinit/units/cycle-a.toml:2: "
        "ordering cycle: cycle-a -> cycle-b -> cycle-a";
    r.boot_offset_ms = 1234;
    r.wall_time = "2024-05-01T10:00:01Z";
    return r;
}

// What PID 1 prints on the emergency path: the kernel's lock state, the policy record written
// before the failure, and the emergency first among the problems.
StatusInputs EmergencyInputs() {
    StatusInputs in;
    in.kernel.query_locked = true;
    in.kernel.sysctl_locked = true;
    in.kernel.modprobe = "/sbin/peinit-modprobe";
    in.policy = {"/run/peinit/policy.json", R"({
      "version": 1,
      "hive": {"state": "loaded", "path": "/etc/peinit/hive.toml", "errors": []},
      "modload_root": "/",
      "lock_after_boot": {"value": true, "source": "hive"},
      "autoload": {"value": "enabled", "source": "default"},
      "autoload_allowed": [], "blacklist": [],
      "signing": {"value": "warn", "source": "default"}, "ignored": []})",
                 ""};
    in.lockdown = {"/run/peinit/lockdown.json", R"({
      "version": 1, "requested": true, "requested_by": "hive", "mechanism": "syscall",
      "trigger": "registry", "locked": true, "error": "", "pid": 1, "comm": "peinit",
      "boot_offset_ms": 1300, "wall_time": "2024-05-01T10:00:01Z"})",
                   ""};
    in.modules = {"/run/peinit/modules.json", std::nullopt, "missing"};
    in.boot = {"/run/peinit/boot.json", CycleEmergency().ToJson(), ""};
    return in;
}

TEST(EmergencyStatus, ProblemsStartWithWhyTheBootStopped) {
    Status s = BuildStatus(EmergencyInputs());
    ASSERT_TRUE(s.boot.has_value());
    EXPECT_EQ(s.boot->state, "emergency");
    EXPECT_EQ(s.boot->stage, "config");
    EXPECT_EQ(s.boot->boot_offset_ms, 1234);
    ASSERT_FALSE(s.problems.empty());
    EXPECT_EQ(s.problems.front(),
              "boot stopped on the emergency path: stage config: 2 error(s) in unit files, "
              "first: /etc/peinit/units/cycle-a.toml:2: ordering cycle: cycle-a -> cycle-b -> "
              "cycle-a");
    EXPECT_EQ(s.ExitCode(), 1);
    EXPECT_EQ(s.locked, true);

    std::string text = RenderStatusText(s);
    EXPECT_EQ(text.rfind("Problems:\n  ! boot stopped on the emergency path: stage config: ", 0),
              0u)
        << text;
    EXPECT_NE(text.find("locked (module_lockdown syscall)"), std::string::npos) << text;
    EXPECT_NE(text.find("record           missing: not attempted, the boot stopped in stage "
                        "config"),
              std::string::npos)
        << text;

    testing::TestJson json(RenderStatusJson(s));
    EXPECT_EQ(json.Str("boot.state"), "emergency");
    EXPECT_EQ(json.Str("boot.stage"), "config");
    EXPECT_EQ(json.Int("boot.boot_offset_ms"), 1234);
    EXPECT_EQ(json.Int("exit_code"), 1);
}

// A normal boot has no boot.json: nothing about it in the status, not even a note.
TEST(EmergencyStatus, NoBootRecordIsNotWorthANote) {
    StatusInputs in = EmergencyInputs();
    in.boot = {"/run/peinit/boot.json", std::nullopt, "missing"};
    Status s = BuildStatus(in);
    EXPECT_FALSE(s.boot.has_value());
    EXPECT_EQ(s.records.size(), 3u);
    for (const auto& n : s.notes) EXPECT_EQ(n.find("boot.json"), std::string::npos) << n;
    for (const auto& p : s.problems) EXPECT_EQ(p.find("emergency"), std::string::npos) << p;
    std::string json = RenderStatusJson(s);
    EXPECT_EQ(json.find("\"boot\""), std::string::npos) << json;
}

TEST(EmergencyStatus, InvalidBootRecordIsAProblem) {
    StatusInputs in = EmergencyInputs();
    in.boot = {"/run/peinit/boot.json", "{\"version\": 1,", ""};
    Status s = BuildStatus(in);
    EXPECT_FALSE(s.boot.has_value());
    ASSERT_EQ(s.records.size(), 4u);
    EXPECT_EQ(s.records[3].name, "boot");
    EXPECT_EQ(s.records[3].state, "invalid");
    EXPECT_EQ(s.ExitCode(), 1);
}

// peinitctl reads the record PID 1 left under ROOT/run/peinit (the emergency shell's view).
TEST(EmergencyStatus, ReadFromTheRunDirectory) {
    TempRoot root;
    ASSERT_FALSE(root.path().empty());
    root.Write("run/peinit/boot.json", CycleEmergency().ToJson());
    root.Write("proc/sys/kernel/module_loading_locked", "1\n");
    FakeKernel kernel;
    Status s = BuildStatus(ReadStatusInputs(kernel, root.path()));
    ASSERT_TRUE(s.boot.has_value());
    EXPECT_EQ(s.boot->error, CycleEmergency().error);
    EXPECT_EQ(s.locked, true);
    ASSERT_FALSE(s.problems.empty());
    EXPECT_NE(s.problems.front().find("ordering cycle: cycle-a -> cycle-b -> cycle-a"),
              std::string::npos);
}

}  // namespace
}  // namespace peinit
