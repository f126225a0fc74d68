// Measured boot (R-33) with the fake TPM: the event strings, the user-space log's exact bytes
// and locking protocol, the order and replay of extends (parallel modules included), a TPM that
// fails mid-boot (the lock is still applied), no TPM (not measured), the PCR knob, the record.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/module_lockdown.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "peinit/core/boot_context.h"
#include "peinit/core/hive.h"
#include "peinit/record/measurement.h"
#include "peinit/tpm/event_log.h"
#include "peinit/tpm/measure.h"
#include "stages/config/config.h"
#include "stages/lockdown/lockdown.h"
#include "stages/measure/measure.h"
#include "tests/fakes/fake_kernel.h"
#include "tests/fakes/fake_tpm.h"
#include "tests/unit/fixture_roots.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// The records of a JSON-SEQ log: each must start with 0x1E and end with "\n".
std::vector<std::string> SplitLog(const std::string& text) {
    std::vector<std::string> out;
    std::size_t at = 0;
    while (at < text.size()) {
        EXPECT_EQ(text[at], '\x1e') << "record at byte " << at;
        std::size_t end = text.find('\n', at);
        EXPECT_NE(end, std::string::npos);
        if (end == std::string::npos) break;
        out.push_back(text.substr(at + 1, end - at - 1));
        at = end + 1;
    }
    return out;
}

// S of a log record (the value of "string"), unescaped for the plain-ASCII strings these
// tests measure: the content object is the record's tail.
std::string StringOf(const std::string& record) {
    const std::string key = "\"content\":{\"string\":";
    auto at = record.find(key);
    EXPECT_NE(at, std::string::npos) << record;
    at += key.size();
    std::string out;
    EXPECT_EQ(record[at], '"');
    for (std::size_t i = at + 1; i < record.size() && record[i] != '"'; ++i) {
        if (record[i] == '\\') ++i;
        out += record[i];
    }
    return out;
}

std::string EventOf(const std::string& s) {
    auto at = s.find("\"event\":\"");
    if (at == std::string::npos) return "";
    at += 9;
    return s.substr(at, s.find('"', at) - at);
}

tpm::Digest Replay(const std::vector<std::string>& strings) {
    tpm::Digest pcr{};
    for (const auto& s : strings) pcr = tpm::ExtendDigest(pcr, tpm::Sha256(s));
    return pcr;
}

class MeasureTest : public ::testing::Test {
  protected:
    void SetUp() override {
        char tmpl[] = "/tmp/peinit-measure-test-XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        fs::create_directories(dir_ / "run/peinit");
        fs::create_directories(dir_ / "proc");
        fs::create_directories(dir_ / "etc/peinit/units");
        Write("proc/cmdline", "console=ttyS0 quiet\n");
        ctx_.paths.root = dir_;
        ctx_.kernel_release = "6.1.0-test";
        ctx_.tpm = tpm_;
    }
    void TearDown() override { fs::remove_all(dir_); }

    void Write(const std::string& rel, const std::string& text) {
        fs::create_directories((dir_ / rel).parent_path());
        std::ofstream(dir_ / rel) << text;
    }
    std::string Log() const {
        return testing::ReadFileOrEmpty(dir_ / "run/log/systemd/tpm2-measure.log");
    }
    std::vector<std::string> LogStrings() const {
        std::vector<std::string> out;
        for (const auto& r : SplitLog(Log())) out.push_back(StringOf(r));
        return out;
    }
    std::vector<std::string> LogEvents() const {
        std::vector<std::string> out;
        for (const auto& s : LogStrings()) out.push_back(EventOf(s));
        return out;
    }
    MeasurementRecord Record() const {
        auto r = MeasurementRecord::FromJson(
            testing::ReadFileOrEmpty(dir_ / "run/peinit/measurements.json"), "measurements.json");
        EXPECT_TRUE(r) << r.error().message();
        return r ? *r : MeasurementRecord{};
    }
    tpm::Measurement& MakeMeasurement(bool phases = false) {
        tpm::MeasureConfig config;
        config.phases = phases;
        config.log_path = (dir_ / "run/log/systemd/tpm2-measure.log").string();
        ctx_.measurement = std::make_shared<tpm::Measurement>(tpm_, config);
        return *ctx_.measurement;
    }

    fs::path dir_;
    FakeKernel kernel_;
    std::shared_ptr<FakeTpm> tpm_ = std::make_shared<FakeTpm>();
    BootContext ctx_{kernel_};
};

TEST(EventStringTest, EachEventHasItsFieldsSortedCompactWithEventAndVersion) {
    EXPECT_EQ(tpm::EventString(tpm::MakeImageEvent("aa", "6.1.0-x", "bb")),
              R"({"event":"image","image_sha256":"aa","kernel_release":"6.1.0-x",)"
              R"("key_fingerprint":"bb","v":1})");
    EXPECT_EQ(tpm::EventString(tpm::MakePolicyEvent("h", {"peinit.lock=1", "modprobe.blacklist=x"},
                                                    true, "allow-list", "enforce", "b")),
              R"({"autoload_policy":"allow-list","blacklist_sha256":"b",)"
              R"("cmdline":["peinit.lock=1","modprobe.blacklist=x"],"event":"policy",)"
              R"("hive_sha256":"h","lock_after_boot":true,"signing_policy":"enforce","v":1})");
    EXPECT_EQ(tpm::EventString(tpm::MakePolicyEvent("", {}, false, "enabled", "warn", "b")),
              R"({"autoload_policy":"enabled","blacklist_sha256":"b","cmdline":[],)"
              R"("event":"policy","hive_sha256":"","lock_after_boot":false,)"
              R"("signing_policy":"warn","v":1})");
    EXPECT_EQ(tpm::EventString(tpm::MakeModuleEvent("ext4", "cc", "storage.pkg", "dd")),
              R"({"event":"module","name":"ext4","package":"storage.pkg","sha256":"cc",)"
              R"("signer":"dd","v":1})");
    EXPECT_EQ(tpm::EventString(tpm::MakeModuleSetEvent(3, "ee")),
              R"({"count":3,"event":"module-set","sha256":"ee","v":1})");
    EXPECT_EQ(tpm::EventString(tpm::MakeLockEvent(true, true, "syscall", "registry")),
              R"({"event":"lock","locked":true,"mechanism":"syscall","requested":true,)"
              R"("trigger":"registry","v":1})");
    EXPECT_EQ(tpm::EventString(tpm::MakeLeaveInitrdEvent()), R"({"event":"leave-initrd","v":1})");
}

TEST(EventStringTest, JsonQuoteEscapesControlsQuotesAndInvalidUtf8) {
    EXPECT_EQ(tpm::JsonQuote("a\"b\\c\n\t\x01\x7f"), "\"a\\\"b\\\\c\\n\\t\\u0001\x7f\"");
    EXPECT_EQ(tpm::JsonQuote("gr\xc3\xbc\xc3\x9f"), "\"gr\xc3\xbc\xc3\x9f\"");
    EXPECT_EQ(tpm::JsonQuote("bad\xff\xc3"), "\"bad\\ufffd\\ufffd\"");
    EXPECT_EQ(tpm::JsonQuote("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\"") << "a surrogate";
}

TEST(EventStringTest, LogRecordIsByteExactJsonSeq) {
    const std::string s = R"({"event":"leave-initrd","v":1})";
    const std::string digest = tpm::Hex(tpm::Sha256(s));
    EXPECT_EQ(tpm::PeinitLogRecord(13, "leave-initrd", s),
              "\x1e{\"pcr\":13,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"" + digest +
                  "\"}],\"content_type\":\"peinit\",\"content\":{\"string\":"
                  "\"{\\\"event\\\":\\\"leave-initrd\\\",\\\"v\\\":1}\","
                  "\"eventType\":\"peinit-leave-initrd\"}}\n");
    // systemd-pcrphase's own record for the same word.
    EXPECT_EQ(tpm::PhaseLogRecord(11, "enter-initrd"),
              "\x1e{\"pcr\":11,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"" +
                  tpm::Hex(tpm::Sha256(std::string("enter-initrd"))) +
                  "\"}],\"content_type\":\"systemd\",\"content\":{\"string\":\"enter-initrd\","
                  "\"eventType\":\"phase\"}}\n");
    // The known SHA-256 of "abc", to pin the digest and hex spelling.
    EXPECT_EQ(tpm::Hex(tpm::Sha256(std::string("abc"))),
              "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_F(MeasureTest, LogIsLockedAndStickyWhileBeingWrittenAndCreated0600) {
    const std::string path = (dir_ / "run/log/systemd/tpm2-measure.log").string();
    {
        auto log = tpm::UserspaceLog::Open(path);
        ASSERT_TRUE(log) << log.error().message();
        EXPECT_FALSE(log->tainted());
        struct stat st {};
        ASSERT_EQ(::stat(path.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 07777, 01600u) << "sticky while a record is being written";
        int other = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(other, 0);
        EXPECT_EQ(::flock(other, LOCK_EX | LOCK_NB), -1) << "the writer holds flock(LOCK_EX)";
        EXPECT_EQ(errno, EWOULDBLOCK);
        ::close(other);
        ASSERT_TRUE(log->Append("\x1e{}\n"));
        ASSERT_TRUE(log->Finish());
        ASSERT_EQ(::stat(path.c_str(), &st), 0);
        EXPECT_EQ(st.st_mode & 07777, 0600u);
    }
    int other = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    EXPECT_EQ(::flock(other, LOCK_EX | LOCK_NB), 0) << "released when closed";
    ::close(other);
    {
        // A writer that died mid-record leaves the sticky bit: the next one sees the taint.
        auto log = tpm::UserspaceLog::Open(path);
        ASSERT_TRUE(log);
    }
    auto tainted = tpm::UserspaceLog::Open(path);
    ASSERT_TRUE(tainted);
    EXPECT_TRUE(tainted->tainted());
    ASSERT_TRUE(tainted->Append("\x1e[]\n"));
    EXPECT_EQ(testing::ReadFileOrEmpty(path), "\x1e{}\n\x1e[]\n") << "appended, never truncated";
}

TEST_F(MeasureTest, LogOpenFailureNamesThePath) {
    Write("run/log/systemd", "a file where the directory should be");
    auto log = tpm::UserspaceLog::Open((dir_ / "run/log/systemd/tpm2-measure.log").string());
    ASSERT_FALSE(log);
    EXPECT_THAT(log.error().message(), HasSubstr("run/log/systemd/tpm2-measure.log"));
}

TEST_F(MeasureTest, ParallelModulesLogInExtendOrderAndReplayToThePcr) {
    tpm::Measurement& m = MakeMeasurement();
    ASSERT_TRUE(m.Measure(tpm::MakeImageEvent("a", "k", "f")));
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&m, t] {
            for (int i = 0; i < 10; ++i) {
                const std::string name = "mod" + std::to_string(t) + "_" + std::to_string(i);
                m.MeasureModule(name, tpm::Hex(tpm::Sha256(name)), "p.pkg", "signer");
            }
        });
    }
    for (auto& th : threads) th.join();
    ASSERT_TRUE(m.MeasureModuleSet());
    const auto strings = LogStrings();
    ASSERT_EQ(strings.size(), 42u);
    const auto extends = tpm_->extends();
    ASSERT_EQ(extends.size(), 42u);
    for (std::size_t i = 0; i < strings.size(); ++i) {
        EXPECT_EQ(extends[i].first, 13);
        EXPECT_EQ(extends[i].second, tpm::Sha256(strings[i])) << "record " << i;
    }
    EXPECT_EQ(Replay(strings), *tpm_->ReadPcr(13));
    // Every record's logged digest is SHA-256 of its string.
    for (const auto& r : SplitLog(Log())) {
        EXPECT_THAT(r, HasSubstr("\"digest\":\"" + tpm::Hex(tpm::Sha256(StringOf(r))) + "\""));
    }
    // The set: 40 sorted lines, whatever order the threads took.
    std::vector<std::string> lines;
    for (int t = 0; t < 4; ++t) {
        for (int i = 0; i < 10; ++i) {
            const std::string name = "mod" + std::to_string(t) + "_" + std::to_string(i);
            lines.push_back(name + " " + tpm::Hex(tpm::Sha256(name)));
        }
    }
    std::sort(lines.begin(), lines.end());
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    EXPECT_EQ(strings.back(), R"({"count":40,"event":"module-set","sha256":")" +
                                  tpm::Hex(tpm::Sha256(text)) + R"(","v":1})");
    EXPECT_EQ(m.Record().module_count, 40);
}

TEST_F(MeasureTest, BootPhasesGoToPcr11InSystemdsFormatOnlyWhenAsked) {
    MakeMeasurement(false).MeasurePhase("enter-initrd");
    EXPECT_TRUE(tpm_->extends().empty());
    MakeMeasurement(true).MeasurePhase("enter-initrd");
    ASSERT_EQ(tpm_->extends().size(), 1u);
    EXPECT_EQ(tpm_->extends()[0].first, 11);
    EXPECT_EQ(Log(), tpm::PhaseLogRecord(11, "enter-initrd"));
}

// The config stage measures image and policy; the lockdown stage the module set and the lock.
TEST_F(MeasureTest, ConfigAndLockdownMeasureImagePolicyModuleSetAndLockInOrder) {
    const std::string image =
        R"({"version":1,"generator":"peinit-image 0.1.0","kernel_release":"6.1.0-test",)"
        R"("module_mode":"units","key_fingerprint":")" + std::string(64, 'a') +
        R"(","built":"1970-01-01T00:00:00Z"})";
    Write("etc/peinit/image.json", image);
    const std::string hive =
        "[Machine.System.Modules]\nLockAfterBoot = true\nBlacklist = [\"floppy\"]\n";
    Write("etc/peinit/hive.toml", hive);
    Write("proc/cmdline", "console=ttyS0 modprobe.blacklist=pcspkr,floppy\n");
    ::chmod((dir_ / "etc/peinit/hive.toml").c_str(), 0644);
    ASSERT_TRUE(RunConfig(ctx_));
    ASSERT_TRUE(ctx_.measurement) << "a TPM is present";
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_TRUE(kernel_.IsLocked());

    const auto strings = LogStrings();
    EXPECT_EQ(LogEvents(), (std::vector<std::string>{"image", "policy", "module-set", "lock"}));
    ASSERT_EQ(strings.size(), 4u);
    EXPECT_EQ(strings[0], tpm::EventString(tpm::MakeImageEvent(
                              tpm::Hex(tpm::Sha256(image)), "6.1.0-test", std::string(64, 'a'))));
    EXPECT_EQ(strings[1],
              tpm::EventString(tpm::MakePolicyEvent(
                  tpm::Hex(tpm::Sha256(hive)), {"modprobe.blacklist=pcspkr"}, true, "enabled",
                  "warn", tpm::Hex(tpm::Sha256(std::string("floppy\npcspkr\n"))))));
    EXPECT_EQ(strings[2], tpm::EventString(tpm::MakeModuleSetEvent(
                              0, tpm::Hex(tpm::Sha256(std::string()))))) << "no module loaded";
    EXPECT_EQ(strings[3],
              tpm::EventString(tpm::MakeLockEvent(true, true, "syscall", "registry")));
    EXPECT_EQ(Replay(strings), *tpm_->ReadPcr(13));

    const MeasurementRecord record = Record();
    EXPECT_EQ(record.state, "measured");
    EXPECT_EQ(record.pcr, 13);
    EXPECT_EQ(record.tpm, "fake");
    EXPECT_EQ(record.module_count, 0);
    ASSERT_EQ(record.events.size(), 4u);
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(record.events[i].string, strings[i]);
        EXPECT_EQ(record.events[i].digest, tpm::Hex(tpm::Sha256(strings[i])));
        EXPECT_EQ(record.events[i].content_type, "peinit");
    }

    MeasureLeaveInitrd(ctx_);
    EXPECT_EQ(LogEvents().back(), "leave-initrd");
    EXPECT_EQ(Replay(LogStrings()), *tpm_->ReadPcr(13));
    EXPECT_FALSE(ctx_.measurement) << "nothing is measured after leave-initrd";
    EXPECT_FALSE(ctx_.tpm) << "the TPM is closed before the real init";
    EXPECT_EQ(Record().events.back().event, "leave-initrd");
}

TEST_F(MeasureTest, NoLockRequestedIsMeasuredAsSuch) {
    ASSERT_TRUE(RunConfig(ctx_));
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_FALSE(kernel_.IsLocked());
    const auto strings = LogStrings();
    ASSERT_EQ(strings.size(), 4u);
    EXPECT_EQ(strings[0], tpm::EventString(tpm::MakeImageEvent("", "6.1.0-test", "")))
        << "no image.json: its absence is measured";
    EXPECT_EQ(strings[3], tpm::EventString(tpm::MakeLockEvent(false, false, "none", "")));
}

TEST_F(MeasureTest, FallbackLockIsMeasuredAsFallback) {
    kernel_.SetUnpatched(true);
    ctx_.policy.lock_after_boot = {true, PolicySource::kHive};
    MakeMeasurement();
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_EQ(LogStrings().back(), tpm::EventString(tpm::MakeLockEvent(
                                       true, true, "fallback", "boot-orchestrator-step")));
}

TEST_F(MeasureTest, TpmFailingMidBootStillLocksAndIsRecorded) {
    Write("etc/peinit/hive.toml", "[Machine.System.Modules]\nLockAfterBoot = true\n");
    tpm_->FailFromExtend(1);  // the image is measured, the policy's extend fails
    ASSERT_TRUE(RunConfig(ctx_)) << "a TPM error never fails a stage";
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_TRUE(kernel_.IsLocked()) << "the lock does not depend on the TPM";
    EXPECT_EQ(tpm_->failed_calls(), 1) << "nothing more is tried after the failure";
    EXPECT_EQ(LogEvents(), std::vector<std::string>{"image"})
        << "the log ends where the PCR does";
    EXPECT_EQ(Replay(LogStrings()), *tpm_->ReadPcr(13));
    const MeasurementRecord record = Record();
    EXPECT_EQ(record.state, "failed");
    EXPECT_THAT(record.error, HasSubstr("the TPM stopped answering"));
    ASSERT_EQ(record.events.size(), 1u);
}

TEST_F(MeasureTest, NoTpmMeasuresNothingAndRecordsNotMeasured) {
    tpm_ = std::make_shared<FakeTpm>(false);
    ctx_.tpm = tpm_;
    Write("etc/peinit/hive.toml", "[Machine.System.Modules]\nLockAfterBoot = true\n");
    ASSERT_TRUE(RunConfig(ctx_));
    EXPECT_FALSE(ctx_.measurement);
    ASSERT_TRUE(RunLockdown(ctx_));
    EXPECT_TRUE(kernel_.IsLocked());
    EXPECT_FALSE(fs::exists(dir_ / "run/log/systemd/tpm2-measure.log"));
    const MeasurementRecord record = Record();
    EXPECT_EQ(record.state, "not-measured");
    EXPECT_EQ(record.reason, "no TPM");
    EXPECT_TRUE(record.events.empty());
}

TEST_F(MeasureTest, HiveChoosesThePcrAndPhases) {
    Write("etc/peinit/hive.toml",
          "[Machine.System.Measurement]\nPcr = 14\nMeasureBootPhases = true\n");
    ASSERT_TRUE(RunConfig(ctx_));
    ASSERT_TRUE(ctx_.measurement);
    const auto extends = tpm_->extends();
    ASSERT_EQ(extends.size(), 3u);
    EXPECT_EQ(extends[0].first, 11) << "enter-initrd";
    EXPECT_EQ(extends[1].first, 14);
    EXPECT_EQ(extends[2].first, 14);
    EXPECT_EQ(Record().pcr, 14);
}

TEST(MeasurementHiveTest, PcrKnobIsValidatedWithFileAndLine) {
    const FileTrust trust{0, 0, 0644};
    Hive ok = ParseHive("hive.toml", "['Machine\\System\\Measurement']\nPcr = 15\n", &trust);
    EXPECT_EQ(ok.state, HiveState::kLoaded);
    EXPECT_EQ(ok.MeasurementPcr(), 15);
    EXPECT_FALSE(ok.MeasureBootPhases());
    EXPECT_EQ(AbsentHive().MeasurementPcr(), 13);
    for (auto [pcr, why] : std::vector<std::pair<int, std::string>>{
             {10, "is IMA's"},
             {16, "debug PCR"},
             {17, "dynamic-launch"},
             {23, "application PCR"},
             {3, "firmware"},
             {24, "does not exist"}}) {
        Hive bad = ParseHive("hive.toml",
                             "['Machine\\System\\Measurement']\n\nPcr = " + std::to_string(pcr) + "\n",
                             &trust);
        EXPECT_EQ(bad.state, HiveState::kFallback) << pcr;
        ASSERT_EQ(bad.errors.size(), 1u) << pcr;
        EXPECT_THAT(bad.errors[0].ToString(), HasSubstr("hive.toml:3: Pcr: PCR " +
                                                        std::to_string(pcr) + " " ));
        EXPECT_THAT(bad.errors[0].ToString(), HasSubstr(why));
    }
    Hive typo = ParseHive("hive.toml", "['Machine\\System\\Measurement']\nPrc = 13\n", &trust);
    EXPECT_EQ(typo.state, HiveState::kFallback);
    EXPECT_THAT(typo.FallbackReason(), HasSubstr("hive.toml:2: unknown value \"Prc\""));
}

TEST(MeasurementRecordTest, RoundTripsAndRefusesNewerVersions) {
    MeasurementRecord r;
    r.state = MeasurementRecord::kFailed;
    r.error = "TPM x: gone";
    r.tpm = "device:/dev/tpmrm0";
    r.pcr = 13;
    r.log = "/run/log/systemd/tpm2-measure.log";
    r.module_count = 2;
    r.module_set_sha256 = std::string(64, 'b');
    r.events.push_back({13, "peinit", "image", R"({"event":"image","v":1})", "cc"});
    r.events.push_back({11, "systemd", "phase", "enter-initrd", "dd"});
    auto back = MeasurementRecord::FromJson(r.ToJson(), "m.json");
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->ToJson(), r.ToJson());
    EXPECT_EQ(back->events[0].string, r.events[0].string);
    auto newer = MeasurementRecord::FromJson(
        R"({"version": 2, "state": "measured"})", "m.json");
    ASSERT_FALSE(newer);
    EXPECT_THAT(newer.error().message(), HasSubstr("m.json: version 2 is newer"));
    auto broken = MeasurementRecord::FromJson("{\n\"version\": 1,\n", "m.json");
    ASSERT_FALSE(broken);
    EXPECT_THAT(broken.error().message(), HasSubstr("m.json:3:"));
}

}  // namespace
}  // namespace peinit
