#include "peinit/sys/log.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace peinit {
namespace {

using ::testing::ElementsAre;

// One end of a SOCK_SEQPACKET pair: every write(2) on the other end arrives as one packet, so
// the test sees record boundaries exactly as /dev/kmsg does.
class RecordReader {
  public:
    RecordReader() {
        int fds[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
        read_ = fds[0];
        write_ = fds[1];
    }
    ~RecordReader() { ::close(read_); }
    // Hands the writing end to the sink (which closes it).
    int TakeWriteEnd() { return std::exchange(write_, -1); }

    std::vector<std::string> Drain() {
        std::vector<std::string> out;
        char buf[2048];
        while (true) {
            ssize_t n = ::recv(read_, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0) break;
            out.emplace_back(buf, static_cast<size_t>(n));
        }
        return out;
    }

  private:
    int read_ = -1;
    int write_ = -1;
};

std::shared_ptr<spdlog::logger> LoggerWith(std::shared_ptr<KmsgSink> sink) {
    auto logger = std::make_shared<spdlog::logger>("test", sink);
    logger->set_level(spdlog::level::trace);
    return logger;
}

TEST(Log, SyslogPriorities) {
    EXPECT_EQ(SyslogPriority(spdlog::level::trace), LOG_DEBUG);
    EXPECT_EQ(SyslogPriority(spdlog::level::debug), LOG_DEBUG);
    EXPECT_EQ(SyslogPriority(spdlog::level::info), LOG_INFO);
    EXPECT_EQ(SyslogPriority(spdlog::level::warn), LOG_WARNING);
    EXPECT_EQ(SyslogPriority(spdlog::level::err), LOG_ERR);
    EXPECT_EQ(SyslogPriority(spdlog::level::critical), LOG_CRIT);
}

TEST(Log, BufferedUntilAttachedThenFlushedInOrderOneWritePerRecord) {
    auto sink = std::make_shared<KmsgSink>();
    auto logger = LoggerWith(sink);
    logger->info("mounting {}", "/proc");
    logger->warn("early warning");
    EXPECT_FALSE(sink->attached());

    RecordReader reader;
    EXPECT_THAT(reader.Drain(), ::testing::IsEmpty());
    sink->AttachFd(reader.TakeWriteEnd());
    EXPECT_TRUE(sink->attached());
    logger->error("after attach");
    logger->debug("two\nlines");
    EXPECT_THAT(reader.Drain(),
                ElementsAre("<6>peinit: mounting /proc\n", "<4>peinit: early warning\n",
                            "<3>peinit: after attach\n", "<7>peinit: two\n", "<7>peinit: lines\n"));
}

TEST(Log, LongRecordsAreTruncatedToWhatKmsgAccepts) {
    auto sink = std::make_shared<KmsgSink>();
    RecordReader reader;
    sink->AttachFd(reader.TakeWriteEnd());
    LoggerWith(sink)->critical(std::string(5000, 'x'));
    auto records = reader.Drain();
    ASSERT_EQ(records.size(), 1u);
    EXPECT_EQ(records[0].size(), KmsgSink::kMaxRecord);
    EXPECT_EQ(records[0].rfind("<2>peinit: xxx", 0), 0u);
    EXPECT_EQ(records[0].back(), '\n');
}

TEST(Log, FullBufferDropsAndSaysSo) {
    auto sink = std::make_shared<KmsgSink>(2);
    auto logger = LoggerWith(sink);
    for (int i = 0; i < 5; ++i) logger->info("record {}", i);
    EXPECT_EQ(sink->dropped(), 3u);
    RecordReader reader;
    sink->AttachFd(reader.TakeWriteEnd());
    EXPECT_THAT(reader.Drain(),
                ElementsAre("<6>peinit: record 0\n", "<6>peinit: record 1\n",
                            "<4>peinit: 3 early log records were dropped (buffer full)\n"));
}

TEST(Log, AttachByPathAndGlobalLogger) {
    char path[] = "/tmp/peinit-kmsg-XXXXXX";
    int fd = ::mkstemp(path);
    ASSERT_GE(fd, 0);
    ::close(fd);

    ShutdownLogging();
    auto logger = InitLogging({.level = spdlog::level::debug});
    EXPECT_EQ(logger, InitLogging()) << "idempotent";
    EXPECT_EQ(spdlog::get(kLoggerName), logger);
    logger->debug("before /dev");
    spdlog::info("via the default logger");
    ASSERT_TRUE(AttachKmsg(path));
    logger->info("after /dev");
    ShutdownLogging();
    EXPECT_EQ(spdlog::get(kLoggerName), nullptr);

    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_EQ(text.str(),
              "<7>peinit: before /dev\n<6>peinit: via the default logger\n<6>peinit: after /dev\n");
    ::unlink(path);

    auto missing = AttachKmsg("/nonexistent/kmsg");
    EXPECT_FALSE(missing);
    EXPECT_EQ(missing.error().message(), "logging is not initialised");
    InitLogging();
    missing = AttachKmsg("/nonexistent/kmsg");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ENOENT);
    EXPECT_EQ(missing.error().message(), "open /nonexistent/kmsg: No such file or directory");
    ShutdownLogging();
}

std::string ReadAll(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Points fd 2 (PID 1's console) at a scratch file for the duration of a test.
class CapturedStderr {
  public:
    CapturedStderr() {
        int fd = ::mkstemp(path_);
        EXPECT_GE(fd, 0);
        saved_ = ::dup(2);
        ::dup2(fd, 2);
        ::close(fd);
    }
    ~CapturedStderr() {
        ::dup2(saved_, 2);
        ::close(saved_);
        ::unlink(path_);
    }
    std::string Text() const { return ReadAll(path_); }

  private:
    char path_[32] = "/tmp/peinit-console-XXXXXX";
    int saved_ = -1;
};

// Issue 16 point 11: the records logged before /dev/kmsg exists reach the console once, through
// the kernel's echo of the kernel log, not also directly (they used to appear twice at boot).
TEST(Log, EarlyRecordsAreNotPrintedOnTheConsoleBesidesTheKernelLog) {
    char kmsg[] = "/tmp/peinit-kmsg-XXXXXX";
    int fd = ::mkstemp(kmsg);
    ASSERT_GE(fd, 0);
    ::close(fd);
    CapturedStderr console;
    ShutdownLogging();
    InitLogging();
    spdlog::info("peinit starting as PID 1");
    spdlog::info("stage early-mounts start");
    ASSERT_TRUE(AttachKmsg(kmsg));
    spdlog::warn("after /dev");
    FallBackToConsole();  // attached: changes nothing
    spdlog::info("still the kernel log");
    ShutdownLogging();
    EXPECT_EQ(console.Text(), "");
    EXPECT_EQ(ReadAll(kmsg),
              "<6>peinit: peinit starting as PID 1\n<6>peinit: stage early-mounts start\n"
              "<4>peinit: after /dev\n<6>peinit: still the kernel log\n");
    ::unlink(kmsg);
}

// Without the kernel log (the emergency path before /dev/kmsg was opened), the buffered records
// and every later one go to the console, in order, each once.
TEST(Log, WithoutTheKernelLogEverythingGoesToTheConsoleOnce) {
    CapturedStderr console;
    ShutdownLogging();
    InitLogging({.max_buffered = 2});
    spdlog::info("peinit starting as PID 1");
    spdlog::error("early-mounts: mount /dev failed");
    spdlog::info("this one is dropped");
    EXPECT_EQ(console.Text(), "");
    FallBackToConsole();
    spdlog::critical("emergency: powering off");
    FallBackToConsole();  // again: nothing is repeated
    ShutdownLogging();
    EXPECT_EQ(console.Text(),
              "peinit: info: peinit starting as PID 1\n"
              "peinit: error: early-mounts: mount /dev failed\n"
              "peinit: warning: 1 early log records were dropped (buffer full)\n"
              "peinit: critical: emergency: powering off\n");
}

}  // namespace
}  // namespace peinit
