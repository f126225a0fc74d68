#include "peinit/sys/log.h"

#include <fcntl.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace peinit {

namespace {

std::mutex g_mutex;
std::shared_ptr<spdlog::logger> g_logger;
std::shared_ptr<KmsgSink> g_kmsg;
int g_console_fd = 2;

}  // namespace

int SyslogPriority(spdlog::level::level_enum level) {
    switch (level) {
        case spdlog::level::trace:
        case spdlog::level::debug:
            return LOG_DEBUG;
        case spdlog::level::info:
            return LOG_INFO;
        case spdlog::level::warn:
            return LOG_WARNING;
        case spdlog::level::err:
            return LOG_ERR;
        case spdlog::level::critical:
            return LOG_CRIT;
        default:
            return LOG_INFO;
    }
}

KmsgSink::KmsgSink(size_t max_buffered) : max_buffered_(max_buffered) {}

KmsgSink::~KmsgSink() {
    if (fd_ >= 0 && !console_) ::close(fd_);
}

Result<void> KmsgSink::Attach(const std::string& path) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_APPEND);
    if (fd < 0) return ErrnoErr("open " + path);
    AttachFd(fd);
    return Ok();
}

void KmsgSink::AttachFd(int fd) {
    std::lock_guard lock(mutex_);
    if (fd_ >= 0 && !console_) ::close(fd_);
    fd_ = fd;
    console_ = false;
    FlushBuffer();
}

void KmsgSink::FallBackToConsole(int fd) {
    std::lock_guard lock(mutex_);
    if (fd_ >= 0) return;
    fd_ = fd;
    console_ = true;
    FlushBuffer();
}

bool KmsgSink::attached() {
    std::lock_guard lock(mutex_);
    return fd_ >= 0 && !console_;
}

size_t KmsgSink::dropped() {
    std::lock_guard lock(mutex_);
    return dropped_;
}

void KmsgSink::sink_it_(const spdlog::details::log_msg& msg) {
    std::string_view payload(msg.payload.data(), msg.payload.size());
    // One record per line: the kernel log is line-oriented and dmesg would escape newlines.
    std::vector<std::string_view> lines;
    for (size_t start = 0;;) {
        size_t nl = payload.find('\n', start);
        std::string_view line =
            payload.substr(start, nl == std::string_view::npos ? nl : nl - start);
        if (!line.empty()) lines.push_back(line);
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    if (lines.empty()) lines.emplace_back();
    for (std::string_view line : lines) {
        if (fd_ >= 0) {
            WriteRecord(msg.level, line);
        } else if (buffer_.size() < max_buffered_) {
            buffer_.emplace_back(msg.level, std::string(line));
        } else {
            ++dropped_;
        }
    }
}

void KmsgSink::FlushBuffer() {
    while (!buffer_.empty()) {
        WriteRecord(buffer_.front().first, buffer_.front().second);
        buffer_.pop_front();
    }
    if (dropped_ > 0 && !dropped_reported_) {
        dropped_reported_ = true;
        WriteRecord(spdlog::level::warn,
                    std::to_string(dropped_) + " early log records were dropped (buffer full)");
    }
}

void KmsgSink::WriteRecord(spdlog::level::level_enum level, std::string_view line) {
    // The kernel log takes the priority as a prefix; the console shows the level's name.
    const auto name = spdlog::level::to_string_view(level);
    std::string record = console_ ? std::string(kLoggerName) + ": " +
                                        std::string(name.data(), name.size()) + ": "
                                  : "<" + std::to_string(SyslogPriority(level)) + ">" +
                                        kLoggerName + ": ";
    size_t room = kMaxRecord - record.size() - 1;
    record.append(line.substr(0, room));
    record += '\n';
    // Nowhere to report a failed log write; a record is never split across writes.
    ssize_t n;
    do {
        n = ::write(fd_, record.data(), record.size());
    } while (n < 0 && errno == EINTR);
}

std::shared_ptr<spdlog::logger> InitLogging(const LogOptions& options) {
    std::lock_guard lock(g_mutex);
    if (g_logger) return g_logger;
    g_kmsg = std::make_shared<KmsgSink>(options.max_buffered);
    g_console_fd = options.console_fd;
    g_logger = std::make_shared<spdlog::logger>(kLoggerName, g_kmsg);
    g_logger->set_level(options.level);
    g_logger->flush_on(spdlog::level::trace);
    spdlog::drop(kLoggerName);
    spdlog::register_logger(g_logger);
    spdlog::set_default_logger(g_logger);
    return g_logger;
}

Result<void> AttachKmsg(const std::string& path) {
    std::shared_ptr<KmsgSink> sink;
    {
        std::lock_guard lock(g_mutex);
        sink = g_kmsg;
    }
    if (!sink) return Err("logging is not initialised", EINVAL);
    return sink->Attach(path);
}

void FallBackToConsole() {
    std::lock_guard lock(g_mutex);
    if (g_kmsg) g_kmsg->FallBackToConsole(g_console_fd);
}

void ShutdownLogging() {
    std::lock_guard lock(g_mutex);
    if (!g_logger) return;
    spdlog::drop(kLoggerName);
    // spdlog needs some default logger; a fresh console one keeps stray calls harmless.
    spdlog::set_default_logger(std::make_shared<spdlog::logger>(
        "default", std::make_shared<spdlog::sinks::stderr_sink_mt>()));
    g_logger.reset();
    g_kmsg.reset();
}

}  // namespace peinit
