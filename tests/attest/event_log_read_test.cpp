// The TPM event log reader and replayer (peinit/tpm/event_log_read.h) on crafted logs.

#include "peinit/tpm/event_log_read.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "log_builder.h"

namespace peinit::tpm {
namespace {

using testing::BootLog;
using testing::Record;
using testing::Sha256Hex;

std::string Hex(const PcrValue& v) {
    return HexEncode(reinterpret_cast<const std::byte*>(v.data()), v.size());
}

// PCR := SHA-256(PCR || digest), from zeros, done by hand.
std::string Extend(std::string pcr_hex, const std::string& digest_hex) {
    std::array<std::byte, 64> joined{};
    HexDecode(pcr_hex, joined.data(), 32);
    HexDecode(digest_hex, joined.data() + 32, 32);
    return HexEncode(Sha256Of(joined));
}
const std::string kZero(64, '0');

TEST(EventLogRead, ReadsEveryRecordWithItsFields) {
    EventLog log = ParseEventLog(BootLog());
    EXPECT_TRUE(log.problems.empty());
    ASSERT_EQ(log.records.size(), 9u);
    EXPECT_EQ(log.record_count, 9);
    const LogRecord& first = log.records[0];
    EXPECT_EQ(first.number, 1);
    EXPECT_EQ(first.pcr, 11);
    EXPECT_EQ(first.content_type, "systemd");
    EXPECT_EQ(first.event_type, "phase");
    EXPECT_EQ(first.content_string.value_or(""), "enter-initrd");
    ASSERT_NE(first.Sha256(), nullptr);
    EXPECT_EQ(*first.Sha256(), Sha256Hex("enter-initrd"));
    EXPECT_EQ(log.records[6].event_type, "peinit-lock");
    EXPECT_EQ(log.records[6].pcr, 13);
    EXPECT_EQ(PcrsOf(log, "peinit"), std::vector<int>{13});
    EXPECT_EQ(PcrsOf(log, "systemd"), std::vector<int>{11});
}

TEST(EventLogRead, ReplaysEachPcrFromZeros) {
    std::string log_text = Record(13, "peinit", "peinit-x", "a") +
                           Record(11, "systemd", "phase", "b") +
                           Record(13, "peinit", "peinit-y", "c");
    EventLog log = ParseEventLog(log_text);
    auto pcrs = ReplaySha256(log);
    ASSERT_EQ(pcrs.size(), 2u);
    EXPECT_EQ(Hex(pcrs[13]), Extend(Extend(kZero, Sha256Hex("a")), Sha256Hex("c")));
    EXPECT_EQ(Hex(pcrs[11]), Extend(kZero, Sha256Hex("b")));
    EXPECT_TRUE(CheckRecordDigests(log).empty());
}

TEST(EventLogRead, ReplayDependsOnOrder) {
    auto ab = ReplaySha256(
        ParseEventLog(Record(13, "peinit", "e", "a") + Record(13, "peinit", "e", "b")));
    auto ba = ReplaySha256(
        ParseEventLog(Record(13, "peinit", "e", "b") + Record(13, "peinit", "e", "a")));
    EXPECT_NE(ab[13], ba[13]);
}

TEST(EventLogRead, EditedContentIsCaughtByItsDigest) {
    std::string text = Record(13, "peinit", "peinit-module", "{\"name\":\"ext4\"}") +
                       Record(13, "peinit", "peinit-module", "{\"name\":\"evil\"}",
                              Sha256Hex("{\"name\":\"xfs\"}"));
    EventLog log = ParseEventLog(text);
    auto problems = CheckRecordDigests(log);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_EQ(problems[0].record, 2);
    EXPECT_NE(problems[0].ToString().find("record 2: digest " + Sha256Hex("{\"name\":\"xfs\"}") +
                                          " is not the SHA-256 of its content"),
              std::string::npos)
        << problems[0].ToString();
}

TEST(EventLogRead, MalformedRecordsAreProblemsWithTheirNumbers) {
    std::string text =
        Record(13, "peinit", "e", "ok") +     // 1
        "\x1e{\"pcr\":13,\"digests\":[]\n" +  // 2: not JSON (truncated object)
        "\x1e{\"pcr\":\"13\",\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"00\"}]}\n" +  // 3
        "\x1e{\"pcr\":24,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"00\"}]}\n" +      // 4
        "\x1e{\"pcr\":13,\"digests\":[{\"hashAlg\":\"sha256\"}],\"content\":{}}\n" +         // 5
        "\x1e{\"pcr\":13,\"digests\":[{\"hashAlg\":\"sha256\",\"digest\":\"00\"}],"
        "\"content_type\":\"peinit\",\"content\":{}}\n" +  // 6
        Record(13, "peinit", "e", "last").substr(0, 20);   // 7: cut short
    EventLog log = ParseEventLog(text);
    ASSERT_EQ(log.records.size(), 1u);
    EXPECT_EQ(log.record_count, 7);
    std::vector<std::string> got;
    for (const auto& p : log.problems) got.push_back(p.ToString());
    ASSERT_EQ(got.size(), 6u);
    EXPECT_NE(got[0].find("record 2: not JSON"), std::string::npos) << got[0];
    EXPECT_EQ(got[1], "record 3: pcr: must be an integer, not string");
    EXPECT_EQ(got[2], "record 4: pcr: 24 is not a PCR (0-23)");
    EXPECT_EQ(got[3], "record 5: digests[0].digest: missing");
    EXPECT_EQ(got[4], "record 6: content.string: missing in a peinit record");
    EXPECT_EQ(got[5], "record 7: truncated (no line feed at its end)");
}

TEST(EventLogRead, TextOutsideRecordsIsAProblem) {
    EventLog log = ParseEventLog("garbage" + Record(13, "peinit", "e", "x"));
    ASSERT_EQ(log.problems.size(), 1u);
    EXPECT_EQ(log.problems[0].record, 0);
    EXPECT_EQ(log.records.size(), 1u);
}

TEST(EventLogRead, BadDigestHexIsReportedAndNotReplayed) {
    std::string text = Record(13, "peinit", "e", "x", "ABCD");
    EventLog log = ParseEventLog(text);
    auto problems = CheckRecordDigests(log);
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].message.find("not 64 lowercase hex digits"), std::string::npos);
    EXPECT_TRUE(ReplaySha256(log).empty());
}

TEST(EventLogRead, EmptyLogHasNoRecords) {
    EventLog log = ParseEventLog("");
    EXPECT_TRUE(log.records.empty());
    EXPECT_TRUE(log.problems.empty());
}

TEST(EventLogRead, ReadEventLogNamesAnUnreadableFile) {
    auto r = ReadEventLog("/nonexistent/tpm2-measure.log");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message().find("cannot open /nonexistent/tpm2-measure.log"),
              std::string::npos);
}

TEST(EventLogRead, ReadEventLogReadsAFile) {
    auto dir =
        std::filesystem::path(::testing::TempDir()) / ("event-log-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "log", std::ios::binary) << BootLog();
    auto r = ReadEventLog((dir / "log").string());
    std::filesystem::remove_all(dir);
    ASSERT_TRUE(r) << r.error().message();
    EXPECT_EQ(r->records.size(), 9u);
}

}  // namespace
}  // namespace peinit::tpm
