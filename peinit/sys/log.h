#pragma once

// peinit's logging: the spdlog logger "peinit" with one sink, the kernel log: one write(2) per
// record to /dev/kmsg, "<pri>peinit: message", so every line lands in the kernel log with its
// syslog priority and the kernel echoes it to the console (filtered by its console loglevel,
// e.g. `quiet`), like every other kernel log line.
//
// PID 1 logs before /dev is mounted; like Android init, records are buffered until the sink is
// attached (AttachKmsg) and then flushed in order. They are not printed on the console as well
// in the meantime: the kernel echoes them when they are flushed, so they would appear twice.
// When the kernel log cannot be had (the emergency path before /dev/kmsg was opened),
// FallBackToConsole writes the buffered records, and every later one, to the console instead.
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
    // Unless the sink is attached: writes the buffered records, and every later one, as
    // "peinit: LEVEL: message" lines to `fd` (the console; not owned).
    void FallBackToConsole(int fd);
    // Attached to the kernel log (not buffering, not on the console).
    bool attached();
    // Records lost because the buffer was full before the sink was attached.
    size_t dropped();

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override;
    void flush_() override {}

  private:
    // Both need mutex_ held.
    void WriteRecord(spdlog::level::level_enum level, std::string_view line);
    void FlushBuffer();

    int fd_ = -1;
    bool console_ = false;  // fd_ is the console (not owned), not /dev/kmsg
    size_t max_buffered_;
    size_t dropped_ = 0;
    bool dropped_reported_ = false;
    std::deque<std::pair<spdlog::level::level_enum, std::string>> buffer_;
};

struct LogOptions {
    spdlog::level::level_enum level = spdlog::level::info;
    size_t max_buffered = 1024;
    int console_fd = 2;  // where FallBackToConsole writes (stderr: /dev/console for PID 1)
};

// Creates the "peinit" logger (the buffering kmsg sink) and makes it spdlog's default; returns
// the existing one when called again.
std::shared_ptr<spdlog::logger> InitLogging(const LogOptions& options = {});

// Attaches the kmsg sink of the peinit logger to `path` and flushes what was buffered.
Result<void> AttachKmsg(const std::string& path = kDefaultKmsgPath);

// KmsgSink::FallBackToConsole on the peinit logger's sink (to LogOptions::console_fd): the
// emergency path calls it so that a boot that stopped before /dev/kmsg was opened still says
// why on the console. Does nothing once the kernel log is attached.
void FallBackToConsole();

// Drops the peinit logger and its sinks (tests, and before exec'ing the real init).
void ShutdownLogging();

}  // namespace peinit
