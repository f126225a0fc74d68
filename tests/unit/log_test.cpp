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
    auto logger = InitLogging({.console = false, .level = spdlog::level::debug});
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
    InitLogging({.console = false});
    missing = AttachKmsg("/nonexistent/kmsg");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.error().code(), ENOENT);
    EXPECT_EQ(missing.error().message(), "open /nonexistent/kmsg: No such file or directory");
    ShutdownLogging();
}

}  // namespace
}  // namespace peinit
