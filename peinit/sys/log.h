#pragma once

// peinit's logging: the spdlog logger "peinit" with two sinks,
//   - the console (stderr, which is /dev/console for PID 1), and
//   - /dev/kmsg: one write(2) per record, "<pri>peinit: message", so every line lands in the
//     kernel log with its syslog priority.
// PID 1 logs before /dev is mounted; like Android init, records are buffered until the kmsg
// sink is attached (AttachKmsg) and then flushed in order.
//
// Library code returns errors and logs at debug at most; the stage that handles an error logs
// it once.

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "peinit/core/result.h"

namespace peinit {

inline constexpr const char* kLoggerName = "peinit";
inline constexpr const char* kDefaultKmsgPath = "/dev/kmsg";

// The syslog priority (LOG_DEBUG..LOG_CRIT) for a spdlog level.
int SyslogPriority(spdlog::level::level_enum level);

class KmsgSink final : public spdlog::sinks::base_sink<std::mutex> {
  public:
    // The kernel refuses /dev/kmsg writes longer than LOG_LINE_MAX (1024 - 48 bytes in 6.1)
    // with EINVAL; longer records are truncated to fit.
    static constexpr size_t kMaxRecord = 976;

    explicit KmsgSink(size_t max_buffered = 1024);
    ~KmsgSink() override;

    // Opens `path` for writing and flushes the buffered records into it.
    Result<void> Attach(const std::string& path);
    // Same with a descriptor the sink takes ownership of (tests pass one end of a socketpair
    // to see record boundaries).
    void AttachFd(int fd);
    bool attached();
    // Records lost because the buffer was full before the sink was attached.
    size_t dropped();

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override {}

  private:
    void WriteRecord(int priority, std::string_view line);  // needs mutex_ held
    void FlushBuffer();                                     // needs mutex_ held

    int fd_ = -1;
    size_t max_buffered_;
    size_t dropped_ = 0;
    bool dropped_reported_ = false;
    std::deque<std::pair<int, std::string>> buffer_;
};

struct LogOptions {
    bool console = true;
    spdlog::level::level_enum level = spdlog::level::info;
    size_t max_buffered = 1024;
};

// Creates the "peinit" logger (console + buffering kmsg sink) and makes it spdlog's default;
// returns the existing one when called again.
std::shared_ptr<spdlog::logger> InitLogging(const LogOptions& options = {});

// Attaches the kmsg sink of the peinit logger to `path` and flushes what was buffered.
Result<void> AttachKmsg(const std::string& path = kDefaultKmsgPath);

// Sets the level of the console sink. Once /dev/kmsg is attached the kernel itself echoes
// records to the console (filtered by its console loglevel, e.g. `quiet`), so PID 1 turns its
// own console sink off to avoid printing every line twice.
void SetConsoleLevel(spdlog::level::level_enum level);

// Drops the peinit logger and its sinks (tests, and before exec'ing the real init).
void ShutdownLogging();

}  // namespace peinit
