// Services under least privilege (issue 15 point 10, R-28): every service loses the capabilities
// of the privileges its unit does not grant (CAP_SYS_MODULE for SeLoadDriverPrivilege,
// CAP_SYS_ADMIN for SeTcbPrivilege) from its bounding set, through the Kernel seam's Spawn
// option; the services record says which service holds which privilege. The boot test
// (tests/boot/lockdown_boot_test.cpp, LockdownBoot.ServicePrivileges) checks what the kernel
// then refuses.

#include "peinit/init/services.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <stdlib.h>

#include <filesystem>
#include <optional>
#include <sstream>

#include "tests/fakes/fake_kernel.h"
#include "tests/json_at.h"
#include "tests/unit/fixture_roots.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

UnitSet Units(const std::string& text) {
    ConfigErrors errors;
    auto unit = ParseUnitFile("units/svc.toml", text, errors);
    EXPECT_TRUE(unit.has_value()) << (errors.empty() ? "" : errors[0].ToString());
    std::vector<Unit> units;
    if (unit) units.push_back(std::move(*unit));
    UnitSet set = LinkUnits(std::move(units), errors);
    EXPECT_TRUE(errors.empty());
    return set;
}

const char* kThree = R"([[service]]
name = "app"
exec = ["/usr/bin/app"]
uid = 1000

[[service]]
name = "driver-loader"
exec = ["/usr/bin/loader"]
privileges = ["SeLoadDriverPrivilege"]

[[service]]
name = "locker"
exec = ["/usr/bin/locker"]
after = ["driver-loader"]
privileges = ["SeTcbPrivilege", "SeLoadDriverPrivilege"]
)";

TEST(ServicePrivileges, UngrantedCapabilitiesAreDroppedFromTheBoundingSet) {
    UnitSet units = Units(kThree);
    ASSERT_EQ(units.ServiceCount(), 3u);
    const ServiceSpec* app = units.FindService("app");
    const ServiceSpec* loader = units.FindService("driver-loader");
    const ServiceSpec* locker = units.FindService("locker");
    ASSERT_TRUE(app && loader && locker);
    // Catalogue order: SeLoadDriver, SeTcb (with what reaches kernel memory), SeDebug, SeShutdown.
    EXPECT_THAT(CapabilitiesToDrop(*app),
                ElementsAre(CAP_SYS_MODULE, CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_BPF, CAP_PERFMON,
                            CAP_SYSLOG, CAP_SYS_PTRACE, CAP_SYS_BOOT));
    EXPECT_THAT(CapabilitiesToDrop(*loader),
                ElementsAre(CAP_SYS_ADMIN, CAP_SYS_RAWIO, CAP_BPF, CAP_PERFMON, CAP_SYSLOG,
                            CAP_SYS_PTRACE, CAP_SYS_BOOT));
    EXPECT_THAT(CapabilitiesToDrop(*locker), ElementsAre(CAP_SYS_PTRACE, CAP_SYS_BOOT));

    FakeKernel kernel;
    ServiceRunner runner(kernel, units, "");
    runner.StartReady();
    auto spawns = kernel.Calls(KernelOp::kSpawn);
    ASSERT_EQ(spawns.size(), 2u);  // locker waits for driver-loader
    EXPECT_EQ(spawns[0].name, "/usr/bin/app");
    EXPECT_THAT(spawns[0].args,
                EndsWith("| uid=1000 | no_new_privs | drop_caps=16,21,17,39,38,34,19,22"));
    EXPECT_EQ(spawns[1].name, "/usr/bin/loader");
    EXPECT_THAT(spawns[1].args, EndsWith("| no_new_privs | drop_caps=21,17,39,38,34,19,22"));
    // FakeKernel numbers from 100: app 100, driver-loader 101. Its exit starts locker, which
    // keeps both privileges.
    ASSERT_EQ(runner.OnExit(101, 0), ServiceSpec::ExitAction::kNone);
    spawns = kernel.Calls(KernelOp::kSpawn);
    ASSERT_EQ(spawns.size(), 3u) << "locker did not start";
    EXPECT_EQ(spawns[2].name, "/usr/bin/locker");
    EXPECT_THAT(spawns[2].args, EndsWith("| no_new_privs | drop_caps=19,22"));
}

// One [[service]] table of a unit file: `name`, exec = ["/usr/bin/NAME"], then `keys` (TOML
// lines).
std::string ServiceTable(const std::string& name, const std::string& keys) {
    return "[[service]]\nname = \"" + name + "\"\nexec = [\"/usr/bin/" + name + "\"]\n" + keys +
           "\n";
}

// What the runner starts service `name` as: its uid (nullopt: PID 1's), gid and no_new_privs.
void ExpectIdentity(const ServiceRunner& runner, const UnitSet& units, const std::string& name,
                    std::optional<uint32_t> uid, std::optional<uint32_t> gid,
                    bool no_new_privs = true) {
    SCOPED_TRACE(name);
    auto options = runner.OptionsFor(*units.FindService(name));
    ASSERT_TRUE(options) << options.error().message();
    EXPECT_EQ(options->uid, uid);
    EXPECT_EQ(options->gid, gid);
    EXPECT_EQ(options->no_new_privs, no_new_privs);
}

// R-28: a unit asks for a non-root user and group, by name (the image's /etc/passwd and
// /etc/group) or number; no_new_privs is on unless the unit turns it off; a name the image does
// not have keeps the service from starting, naming it.
TEST(ServicePrivileges, UserGroupAndNoNewPrivileges) {
    UnitSet units =
        Units(ServiceTable("named", "user = \"net\"\ngroup = \"audio\"") +
              ServiceTable("numbers", "uid = 1000\ngid = 2000\nno_new_privileges = false") +
              ServiceTable("user-only", "user = \"net\"") + ServiceTable("root-group", "gid = 5") +
              ServiceTable("no-such-group", "group = \"ghosts\"") +
              ServiceTable("no-such-user", "user = \"ghost\""));
    FakeKernel kernel;
    ServiceRunner runner(kernel, units, "root:x:0:0::/:/bin/sh\nnet:x:101:102::/:/bin/false\n", "",
                         "root:x:0:\naudio:x:29:net\nnet:x:102:\n");
    ExpectIdentity(runner, units, "named", 101u, 29u);
    ExpectIdentity(runner, units, "numbers", 1000u, 2000u, false);
    ExpectIdentity(runner, units, "user-only", 101u, 102u);  // the user's own group
    ExpectIdentity(runner, units, "root-group", std::nullopt, 5u);

    runner.StartReady();
    auto spawns = kernel.Calls(KernelOp::kSpawn);
    ASSERT_EQ(spawns.size(), 4u);
    EXPECT_THAT(spawns[0].args, HasSubstr("| uid=101 | gid=29 | no_new_privs |"));
    EXPECT_THAT(spawns[1].args, HasSubstr("| uid=1000 | gid=2000 | drop_caps="));
    EXPECT_THAT(runner.OptionsFor(*units.FindService("no-such-group")).error().message(),
                "group ghosts is not in the image's /etc/group");
    EXPECT_THAT(runner.OptionsFor(*units.FindService("no-such-user")).error().message(),
                "user ghost is not in the image's /etc/passwd");
}

class TempDir {
  public:
    TempDir() {
        char tmpl[] = "/tmp/peinit-services-XXXXXX";
        if (mkdtemp(tmpl) != nullptr) path_ = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty()) fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

struct RecordRow {
    std::string name, state, result;
    std::vector<std::string> privileges;
};

std::vector<RecordRow> ReadRecord(const fs::path& path) {
    peinit::testing::TestJson t(peinit::testing::ReadFileOrEmpty(path));
    EXPECT_EQ(t.Int("version"), 1);
    std::vector<RecordRow> rows;
    for (std::size_t i = 0; i < t.Size("services"); ++i) {
        const std::string at = "services." + std::to_string(i) + ".";
        RecordRow row{t.Str(at + "name"), t.Str(at + "state"), t.Str(at + "result"), {}};
        for (std::size_t j = 0; j < t.Size(at + "privileges"); ++j) {
            row.privileges.push_back(t.Str(at + "privileges." + std::to_string(j)));
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

TEST(ServicePrivileges, RecordSaysWhichServiceHoldsWhichPrivilege) {
    TempDir dir;
    ASSERT_FALSE(dir.path().empty());
    const fs::path record = dir.path() / "services.json";
    UnitSet units = Units(kThree);
    FakeKernel kernel;
    kernel.SetOpError(KernelOp::kSpawn, "/usr/bin/loader", EACCES);
    ServiceRunner runner(kernel, units, "", record.string());
    runner.StartReady();
    auto rows = ReadRecord(record);
    ASSERT_EQ(rows.size(), 3u);
    EXPECT_EQ(rows[0].name, "app");
    EXPECT_THAT(rows[0].privileges, IsEmpty());
    EXPECT_EQ(rows[0].state, "running");
    EXPECT_EQ(rows[1].name, "driver-loader");
    EXPECT_THAT(rows[1].privileges, ElementsAre("SeLoadDriverPrivilege"));
    EXPECT_EQ(rows[1].state, "failed");
    EXPECT_THAT(rows[1].result, HasSubstr("not started"));
    // A service whose predecessor could not start still runs, with both privileges.
    EXPECT_EQ(rows[2].name, "locker");
    EXPECT_THAT(rows[2].privileges, ElementsAre("SeLoadDriverPrivilege", "SeTcbPrivilege"));
    EXPECT_EQ(rows[2].state, "running");
    runner.OnExit(100, 0);  // app
    rows = ReadRecord(record);
    EXPECT_EQ(rows[0].state, "exited");
    EXPECT_EQ(rows[0].result, "exit 0");
}

}  // namespace
}  // namespace peinit
