#pragma once

// The signals PID 1 acts on, delivered synchronously through a signalfd so that the event loop
// (not an async handler) decides what happens. SignalQueue::Open() must run before any thread
// is created: the blocked mask is inherited, so no worker thread ever receives these signals.

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "peinit/core/result.h"

namespace peinit {

// SIGCHLD (reap), SIGTERM/SIGPWR/SIGUSR2 (power off), SIGINT (Ctrl-Alt-Del: reboot), SIGHUP.
class SignalQueue {
  public:
    static Result<SignalQueue> Open();
    SignalQueue(SignalQueue&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
    SignalQueue(const SignalQueue&) = delete;
    SignalQueue& operator=(const SignalQueue&) = delete;
    SignalQueue& operator=(SignalQueue&&) = delete;
    ~SignalQueue();

    // The next pending signal, waiting at most `timeout_ms` (-1: forever); nullopt on timeout.
    Result<std::optional<int>> Next(int timeout_ms);
    // The signalfd (non-blocking), for a caller that polls it together with other descriptors
    // and then takes the signal with Next(0).
    int fd() const { return fd_; }

  private:
    explicit SignalQueue(int fd) : fd_(fd) {}
    int fd_;
};

struct ChildExit {
    pid_t pid;
    int status;  // as from waitpid(2)
};

// Reaps every child that has exited, without blocking. PID 1 inherits every orphan, so this
// is what keeps zombies from piling up.
std::vector<ChildExit> ReapChildren();

// "exit 3", "signal 9 (Killed)".
std::string DescribeWaitStatus(int status);

}  // namespace peinit
