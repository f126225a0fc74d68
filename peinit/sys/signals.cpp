#include "peinit/sys/signals.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace peinit {

namespace {

sigset_t HandledSet() {
    sigset_t set;
    sigemptyset(&set);
    for (int sig : {SIGCHLD, SIGTERM, SIGINT, SIGPWR, SIGUSR1, SIGUSR2, SIGHUP}) {
        sigaddset(&set, sig);
    }
    return set;
}

}  // namespace

Result<SignalQueue> SignalQueue::Open() {
    sigset_t set = HandledSet();
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) return ErrnoErr("sigprocmask");
    int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) return ErrnoErr("signalfd");
    return SignalQueue(fd);
}

SignalQueue::~SignalQueue() {
    if (fd_ >= 0) close(fd_);
}

Result<std::optional<int>> SignalQueue::Next(int timeout_ms) {
    while (true) {
        signalfd_siginfo info;
        ssize_t n = read(fd_, &info, sizeof info);
        if (n == static_cast<ssize_t>(sizeof info)) return std::optional<int>(info.ssi_signo);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) return ErrnoErr("read signalfd");
        pollfd pfd{fd_, POLLIN, 0};
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return ErrnoErr("poll signalfd");
        if (r == 0) return std::optional<int>();
    }
}

std::vector<ChildExit> ReapChildren() {
    std::vector<ChildExit> exits;
    while (true) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;  // 0: children left but none exited; -1/ECHILD: no children
        exits.push_back({pid, status});
    }
    return exits;
}

std::string DescribeWaitStatus(int status) {
    if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        return "signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
    }
    return "status " + std::to_string(status);
}

}  // namespace peinit
