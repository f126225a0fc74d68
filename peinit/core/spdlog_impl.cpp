// spdlog's implementation, compiled once into peinit_core from the installed package's own
// headers (SPDLOG_COMPILED_LIB, with fmt header-only): the project links no libspdlog.so and
// no libfmt.so (CMakeLists.txt, "peinit_logging"), so PID 1 maps two shared objects fewer and
// can carry the C++ runtime linked in. Every other file includes the declarations only. What
// is instantiated here is what peinit uses: the logger, the registry, the pattern formatter,
// base_sink (the kmsg sink and the tests' ostream sinks), the stderr sink of the tools and
// the registry's periodic flusher and default (colour) logger.
#ifndef SPDLOG_COMPILED_LIB
#error "spdlog_impl.cpp is built with SPDLOG_COMPILED_LIB (the peinit_logging target)"
#endif

#include <spdlog/common-inl.h>
#include <spdlog/details/backtracer-inl.h>
#include <spdlog/details/console_globals.h>
#include <spdlog/details/log_msg-inl.h>
#include <spdlog/details/log_msg_buffer-inl.h>
#include <spdlog/details/null_mutex.h>
#include <spdlog/details/os-inl.h>
#include <spdlog/details/periodic_worker-inl.h>
#include <spdlog/details/registry-inl.h>
#include <spdlog/logger-inl.h>
#include <spdlog/pattern_formatter-inl.h>
#include <spdlog/sinks/ansicolor_sink-inl.h>
#include <spdlog/sinks/base_sink-inl.h>
#include <spdlog/sinks/sink-inl.h>
#include <spdlog/sinks/stdout_sinks-inl.h>
#include <spdlog/spdlog-inl.h>

#include <mutex>

template spdlog::logger::logger(std::string name, sinks_init_list::iterator begin,
                                sinks_init_list::iterator end);
template class spdlog::sinks::base_sink<std::mutex>;
template class spdlog::sinks::base_sink<spdlog::details::null_mutex>;
template class spdlog::sinks::stdout_sink_base<spdlog::details::console_mutex>;
template class spdlog::sinks::stderr_sink<spdlog::details::console_mutex>;
// The registry's default logger (replaced at once by peinit's own, but constructed first).
template class spdlog::sinks::ansicolor_sink<spdlog::details::console_mutex>;
template class spdlog::sinks::ansicolor_stdout_sink<spdlog::details::console_mutex>;
