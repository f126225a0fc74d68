#pragma once

// Makes spdlog's default logger write bare messages ("%v") into a string for the lifetime of
// the object (a test fixture member), and restores the previous logger afterwards.

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <sstream>
#include <string>

namespace peinit::testing {

class CapturedLog {
  public:
    explicit CapturedLog(const std::string& name,
                         spdlog::level::level_enum level = spdlog::level::info)
        : saved_(spdlog::default_logger()) {
        auto logger = std::make_shared<spdlog::logger>(
            name, std::make_shared<spdlog::sinks::ostream_sink_mt>(out_));
        logger->set_pattern("%v");
        logger->set_level(level);
        spdlog::set_default_logger(logger);
    }
    ~CapturedLog() { spdlog::set_default_logger(saved_); }
    CapturedLog(const CapturedLog&) = delete;
    CapturedLog& operator=(const CapturedLog&) = delete;

    std::string str() const { return out_.str(); }

  private:
    std::ostringstream out_;
    std::shared_ptr<spdlog::logger> saved_;
};

}  // namespace peinit::testing
