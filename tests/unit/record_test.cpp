// The typed records under /run/peinit (peinit/record/): each type's JSON written by ToJson reads
// back to the same value with FromJson, a record of a newer major version is refused naming the
// file and both versions, and a member of the wrong type names its path.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "peinit/record/image.h"
#include "peinit/record/measurement.h"
#include "peinit/record/modules.h"
#include "peinit/record/policy.h"
#include "peinit/record/stages.h"

namespace peinit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Status = ModuleOutcome::Status;

// `text` with its first `from` replaced by `to` (the test fails when `from` is not there).
std::string Replace(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from << " in " << text;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
}

ModuleRow SampleRow() {
    ModuleOutcome o;
    o.module = "virtio_blk";
    o.status = Status::kFailed;
    o.unit = "storage";
    o.error = 129;  // EKEYREJECTED
    o.reason = "Key was rejected by service";
    o.requested_by = {"unit storage", "coldplug /sys/devices/pci0000:00/0000:00:04.0"};
    o.origins = {RequestOrigin::Unit("storage"),
                 RequestOrigin::Coldplug("/sys/devices/pci0000:00/0000:00:04.0")};
    o.package = "all.pkg";
    o.start = std::chrono::microseconds(1500);
    o.duration = std::chrono::microseconds(2500);
    o.ready = std::chrono::microseconds(1200);
    o.waits_for = {"virtio", "virtio_ring"};
    return ModuleRow::From(o);
}

void ExpectSameRow(const ModuleRow& a, const ModuleRow& b) {
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.status, b.status);
    EXPECT_EQ(a.unit, b.unit);
    EXPECT_EQ(a.requested_by, b.requested_by);
    EXPECT_EQ(a.origins, b.origins);
    EXPECT_EQ(a.error, b.error);
    EXPECT_EQ(a.errno_name, b.errno_name);
    EXPECT_EQ(a.reason, b.reason);
    EXPECT_EQ(a.refused, b.refused);
    EXPECT_EQ(a.package, b.package);
    EXPECT_EQ(a.start_us, b.start_us);
    EXPECT_EQ(a.duration_us, b.duration_us);
    EXPECT_EQ(a.waits_for, b.waits_for);
    EXPECT_EQ(a.ready_us, b.ready_us);
}

TEST(Records, ModuleRowFromAnOutcome) {
    ModuleRow row = SampleRow();
    EXPECT_EQ(row.errno_name, "EKEYREJECTED");
    EXPECT_EQ(row.ready_us, 1200);
    EXPECT_EQ(row.Device(), "/sys/devices/pci0000:00/0000:00:04.0");
    EXPECT_TRUE(row.IsProblem());
    ModuleOutcome waits_for_none;
    waits_for_none.ready = std::chrono::microseconds(7);
    EXPECT_EQ(ModuleRow::From(waits_for_none).ready_us, -1);
    EXPECT_EQ(ModuleRow::From(waits_for_none).Device(), "");
}

TEST(Records, ModulesRecordRoundTrips) {
    ModulesRecord r;
    r.wall_time = "2026-12-07T08:00:00Z";
    r.boot_offset_ms = 812;
    r.kernel_release = "6.1.0-57-amd64";
    r.workers = 2;
    r.workers_source = "default";
    r.threads = 2;
    r.total_ms = 3012;
    r.signing = {"enforce", "hive", "Y", "", true};
    r.summary = {101, 1, 0, 2, 3};
    r.phases = {40, 5, 300, 350, 2500, 200};
    r.packages.push_back({"/usr/lib/peinit/packages/all.pkg", "all", "1", "3208fa845bd73ea3", "",
                          true, {"ext4", "virtio_blk"}, 2, {"ext4"}});
    r.modules = {SampleRow()};
    ModuleOutcome refused;
    refused.module = "af_alg";
    refused.reason = "refused: not in AutoLoadAllowed";
    refused.refused = true;
    refused.origins = {RequestOrigin::Demand("net-pf-38")};
    r.modules.push_back(ModuleRow::From(refused));
    r.plan_errors = {"unit storage: module nosuch not found"};
    r.warnings = {"a warning"};
    r.error = "";

    auto back = ModulesRecord::FromJson(r.ToJson(), "modules.json");
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->version, 1);
    EXPECT_EQ(back->wall_time, r.wall_time);
    EXPECT_EQ(back->boot_offset_ms, 812);
    EXPECT_EQ(back->kernel_release, r.kernel_release);
    EXPECT_EQ(back->workers, 2);
    EXPECT_EQ(back->workers_source, "default");
    EXPECT_EQ(back->total_ms, 3012);
    EXPECT_EQ(back->signing.policy, "enforce");
    EXPECT_EQ(back->signing.sig_enforce, "Y");
    EXPECT_TRUE(back->signing.applied);
    EXPECT_EQ(back->summary.ok, 101);
    EXPECT_EQ(back->summary.no_device, 3);
    EXPECT_EQ(back->phases.first_load_ms, 350);
    EXPECT_EQ(back->phases.prefetch_load_ms, 200);
    ASSERT_EQ(back->packages.size(), 1u);
    EXPECT_EQ(back->packages[0].signer, "3208fa845bd73ea3");
    EXPECT_TRUE(back->packages[0].verified);
    EXPECT_THAT(back->packages[0].modules, ElementsAre("ext4", "virtio_blk"));
    EXPECT_EQ(back->packages[0].hashed, 2);
    EXPECT_THAT(back->packages[0].released, ElementsAre("ext4"));
    ASSERT_EQ(back->modules.size(), 2u);
    ExpectSameRow(back->modules[0], r.modules[0]);
    ExpectSameRow(back->modules[1], r.modules[1]);
    EXPECT_TRUE(back->modules[1].refused);
    EXPECT_EQ(back->modules[1].origins[0].kind, RequestOrigin::Kind::kDemand);
    EXPECT_EQ(back->plan_errors, r.plan_errors);
    EXPECT_EQ(back->warnings, r.warnings);
}

TEST(Records, StageRecordsRoundTrip) {
    LockdownRecord l;
    l.requested = true;
    l.requested_by = "hive";
    l.mechanism = "syscall";
    l.trigger = "registry";
    l.locked = true;
    l.pid = 1;
    l.comm = "peinit";
    l.boot_offset_ms = 4100;
    l.wall_time = "2026-12-07T08:00:04Z";
    auto lb = LockdownRecord::FromJson(l.ToJson(), "lockdown.json");
    ASSERT_TRUE(lb) << lb.error().message();
    EXPECT_TRUE(lb->requested && lb->locked);
    EXPECT_EQ(lb->mechanism, "syscall");
    EXPECT_EQ(lb->trigger, "registry");
    EXPECT_EQ(lb->pid, 1);
    EXPECT_EQ(lb->boot_offset_ms, 4100);
    EXPECT_EQ(lb->wall_time, l.wall_time);

    ColdplugRecord c;
    c.policy = "allow-list";
    c.total_ms = 90;
    c.devices.push_back({"/sys/devices/x", "pci:v00001AF4d00001001", {"virtio_blk"}, "", 2});
    c.modules = {SampleRow()};
    c.settle = {3, false, 50, 2000, {{"/sys/devices/y", "pci:v0000DEADd0000BEEF"}}};
    auto cb = ColdplugRecord::FromJson(c.ToJson(), "coldplug.json");
    ASSERT_TRUE(cb) << cb.error().message();
    ASSERT_EQ(cb->devices.size(), 1u);
    EXPECT_EQ(cb->devices[0].modalias, "pci:v00001AF4d00001001");
    EXPECT_THAT(cb->devices[0].modules, ElementsAre("virtio_blk"));
    EXPECT_EQ(cb->devices[0].round, 2);
    ExpectSameRow(cb->modules.at(0), c.modules[0]);
    EXPECT_EQ(cb->settle.rounds, 3);
    EXPECT_FALSE(cb->settle.settled);
    EXPECT_EQ(cb->settle.timeout_ms, 2000);
    ASSERT_EQ(cb->settle.left.size(), 1u);
    EXPECT_EQ(cb->settle.left[0].syspath, "/sys/devices/y");

    HotplugRecord h;
    h.policy = "enabled";
    h.devices.push_back({"/sys/devices/z", "usb:v1234", "refused", {"usb_storage"}, "not allowed",
                         9000});
    h.modules = {SampleRow()};
    auto hb = HotplugRecord::FromJson(h.ToJson(), "hotplug.json");
    ASSERT_TRUE(hb) << hb.error().message();
    ASSERT_EQ(hb->devices.size(), 1u);
    EXPECT_EQ(hb->devices[0].result, "refused");
    EXPECT_EQ(hb->devices[0].boot_offset_ms, 9000);
    ExpectSameRow(hb->modules.at(0), h.modules[0]);

    ServicesRecord s;
    ServicesRecord::Service probe;
    probe.name = "probe";
    probe.privileges = {"SeLoadDriverPrivilege"};
    probe.state = "exited";
    probe.pid = 77;
    probe.result = "exit 0";
    probe.uid = 1000;
    probe.group = "users";
    s.services = {probe, ServicesRecord::Service{"idle", {}, "waiting", 0, "", {}, {}, {}, {}}};
    auto sb = ServicesRecord::FromJson(s.ToJson(), "services.json");
    ASSERT_TRUE(sb) << sb.error().message();
    ASSERT_EQ(sb->services.size(), 2u);
    EXPECT_THAT(sb->services[0].privileges, ElementsAre("SeLoadDriverPrivilege"));
    EXPECT_EQ(sb->services[0].uid, 1000);
    EXPECT_EQ(sb->services[0].group, "users");
    EXPECT_FALSE(sb->services[0].gid);
    EXPECT_FALSE(sb->services[1].uid);
    EXPECT_EQ(sb->services[1].state, "waiting");

    AutoloadRecord a;
    a.policy = "allow-list";
    a.source = "hive";
    a.helper = "/run/peinit/ro/bin/peinit-modprobe";
    a.allowed = {"af_packet"};
    a.gate = "sealed";
    auto ab = AutoloadRecord::FromJson(a.ToJson(), "autoload.json");
    ASSERT_TRUE(ab) << ab.error().message();
    EXPECT_EQ(ab->helper, a.helper);
    EXPECT_THAT(ab->allowed, ElementsAre("af_packet"));
    EXPECT_EQ(ab->gate, "sealed");

    BootRecord b;
    b.stage = "config";
    b.error = "hive.toml:3: bad value";
    b.boot_offset_ms = 120;
    auto bb = BootRecord::FromJson(b.ToJson(), "boot.json");
    ASSERT_TRUE(bb) << bb.error().message();
    EXPECT_EQ(bb->state, "emergency");
    EXPECT_EQ(bb->stage, "config");
    EXPECT_EQ(bb->error, b.error);
}

// A record written by a build with a newer major schema version: every reader refuses it with
// the file and both versions named (an older one is read).
TEST(Records, NewerMajorVersionIsRefusedNamingTheFileAndBothVersions) {
    auto expect_refused = [](const std::string& message, const std::string& file) {
        EXPECT_THAT(message, HasSubstr(file + ": version 2 is newer than this reader's 1"));
    };
    const std::string v2 = "\"version\" : 2";
    expect_refused(ModulesRecord::FromJson(Replace(ModulesRecord{}.ToJson(), "\"version\" : 1", v2),
                                           "/run/peinit/modules.json")
                       .error()
                       .message(),
                   "/run/peinit/modules.json");
    expect_refused(LockdownRecord::FromJson(
                       Replace(LockdownRecord{}.ToJson(), "\"version\" : 1", v2), "lockdown.json")
                       .error()
                       .message(),
                   "lockdown.json");
    expect_refused(ColdplugRecord::FromJson(
                       Replace(ColdplugRecord{}.ToJson(), "\"version\" : 1", v2), "coldplug.json")
                       .error()
                       .message(),
                   "coldplug.json");
    expect_refused(HotplugRecord::FromJson(Replace(HotplugRecord{}.ToJson(), "\"version\" : 1", v2),
                                           "hotplug.json")
                       .error()
                       .message(),
                   "hotplug.json");
    expect_refused(ServicesRecord::FromJson(
                       Replace(ServicesRecord{}.ToJson(), "\"version\" : 1", v2), "services.json")
                       .error()
                       .message(),
                   "services.json");
    expect_refused(AutoloadRecord::FromJson(
                       Replace(AutoloadRecord{}.ToJson(), "\"version\" : 1", v2), "autoload.json")
                       .error()
                       .message(),
                   "autoload.json");
    expect_refused(
        BootRecord::FromJson(Replace(BootRecord{}.ToJson(), "\"version\" : 1", v2), "boot.json")
            .error()
            .message(),
        "boot.json");
    expect_refused(PolicyRecord::FromJson(Replace(PolicyRecord{}.ToJson(), "\"version\" : 1", v2),
                                          "policy.json")
                       .error()
                       .message(),
                   "policy.json");
    expect_refused(MeasurementRecord::FromJson(
                       Replace(MeasurementRecord{}.ToJson(), "\"version\" : 1", v2), "m.json")
                       .error()
                       .message(),
                   "m.json");
}

TEST(Records, AWrongTypeOrUnknownValueNamesTheMembersPath) {
    ModulesRecord r;
    r.modules = {SampleRow(), SampleRow()};
    const std::string good = r.ToJson();
    auto error = [](const std::string& text) {
        auto back = ModulesRecord::FromJson(text, "modules.json");
        return back ? std::string("(read)") : back.error().message();
    };
    EXPECT_EQ(error(Replace(good, "\"total_ms\" : 0", "\"total_ms\" : \"0\"")),
              "modules.json: total_ms: must be an integer, not string");
    EXPECT_EQ(error(Replace(good, "\"applied\" : true", "\"applied\" : \"true\"")),
              "modules.json: signing.applied: must be a boolean, not string");
    EXPECT_EQ(error(Replace(good, "\"status\" : \"failed\"", "\"status\" : \"exploded\"")),
              "modules.json: modules[0].status: unknown value \"exploded\"");
    EXPECT_EQ(error(Replace(good, "\"kind\" : \"unit\"", "\"kind\" : 3")),
              "modules.json: modules[0].origins[0].kind: must be a string, not integer");
    EXPECT_EQ(error(Replace(good, "\"waits_for\" : [", "\"waits_for\" : [ 5,")),
              "modules.json: modules[0].waits_for[0]: must be a string, not integer");
    EXPECT_EQ(error("{\"version\": 1,\n\"modules\": [\n"), "modules.json:3: not JSON: truncated");
    EXPECT_EQ(error("[1]"), "modules.json: must be a JSON object, not array");
    EXPECT_EQ(error("{}"), "modules.json: no \"version\"");
}

// Keys a reader does not know (added within its major version) are ignored; keys an older writer
// of the same version did not write keep their defaults.
TEST(Records, UnknownKeysAreIgnoredAndAbsentOnesKeepTheirDefaults) {
    auto r = LockdownRecord::FromJson(
        R"({"version": 1, "locked": true, "added_later": {"x": [1, 2]}})", "lockdown.json");
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_TRUE(r->locked);
    EXPECT_FALSE(r->requested);
    EXPECT_EQ(r->mechanism, "");
}

TEST(Records, RequiredMembersOfTheStrictRecords) {
    ImageInfo info;
    info.generator = "peinit-image 0.1";
    info.kernel_release = "6.1.0-57-amd64";
    info.module_mode = "units";
    info.key_fingerprint = "ab";
    info.built = "1970-01-01T00:00:00Z";
    auto back = ImageInfo::FromJson(info.ToJson(), "image.json");
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->kernel_release, info.kernel_release);
    auto missing = ImageInfo::FromJson(Replace(info.ToJson(), "\"built\"", "\"later\""),
                                       "image.json");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().message(), "image.json: no \"built\"");
}

}  // namespace
}  // namespace peinit
