#include "qemu_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace peinit::testing {

namespace {

using Clock = std::chrono::steady_clock;

// Waits for pid until deadline; returns true if it was reaped.
bool wait_until(pid_t pid, int& status, Clock::time_point deadline) {
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return true;  // nothing left to wait for
    if (Clock::now() >= deadline) return false;
    usleep(20 * 1000);
  }
}

}  // namespace

std::vector<std::string> qemu_command(const QemuOptions& o) {
  std::string append = "console=ttyS0 panic=-1";
  if (!o.append.empty()) append += " " + o.append;
  std::vector<std::string> argv = {o.qemu_binary,
                                   "-machine", "q35",
                                   "-accel", "tcg",
                                   "-m", std::to_string(o.memory_mb),
                                   "-smp", std::to_string(o.smp),
                                   "-nographic",
                                   "-no-reboot",
                                   "-kernel", o.kernel,
                                   "-initrd", o.initrd,
                                   "-append", append};
  argv.insert(argv.end(), o.extra_args.begin(), o.extra_args.end());
  return argv;
}

std::string QemuResult::describe() const {
  std::ostringstream s;
  double secs = static_cast<double>(elapsed.count()) / 1000.0;
  if (!launched) {
    s << "qemu was not started: " << error;
  } else if (timed_out) {
    s << "timed out after " << secs << " s and was killed";
  } else if (exited) {
    s << "exited with status " << exit_status << " after " << secs << " s";
  } else if (term_signal != 0) {
    s << "killed by signal " << term_signal << " after " << secs << " s";
  } else {
    s << "ended in an unknown way after " << secs << " s";
  }
  if (launched && !error.empty()) s << " (" << error << ")";
  return s.str();
}

std::vector<std::string> QemuResult::lines() const {
  std::vector<std::string> out;
  std::string cur;
  for (char c : output) {
    if (c == '\r') continue;
    if (c == '\n') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

QemuResult run_qemu(const QemuOptions& o) {
  QemuResult res;
  res.command = qemu_command(o);
  if (o.kernel.empty() || access(o.kernel.c_str(), R_OK) != 0) {
    res.error = "kernel image not readable: '" + o.kernel + "'";
    return res;
  }
  if (o.initrd.empty() || access(o.initrd.c_str(), R_OK) != 0) {
    res.error = "initrd not readable: '" + o.initrd + "'";
    return res;
  }

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    res.error = std::string("pipe: ") + std::strerror(errno);
    return res;
  }
  // Exec failure is reported through a second close-on-exec pipe.
  int errpipe[2];
  if (pipe2(errpipe, O_CLOEXEC) != 0) {
    res.error = std::string("pipe: ") + std::strerror(errno);
    close(pipefd[0]);
    close(pipefd[1]);
    return res;
  }

  std::vector<char*> argv;
  for (auto& a : res.command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  auto start = Clock::now();
  pid_t pid = fork();
  if (pid < 0) {
    res.error = std::string("fork: ") + std::strerror(errno);
    for (int fd : {pipefd[0], pipefd[1], errpipe[0], errpipe[1]}) close(fd);
    return res;
  }
  if (pid == 0) {
    setpgid(0, 0);  // own process group: kill the whole thing on timeout
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    dup2(pipefd[1], STDOUT_FILENO);
    dup2(pipefd[1], STDERR_FILENO);
    execvp(argv[0], argv.data());
    int e = errno;
    ssize_t ignored = write(errpipe[1], &e, sizeof(e));
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);
  close(pipefd[1]);
  close(errpipe[1]);

  int exec_errno = 0;
  ssize_t n = read(errpipe[0], &exec_errno, sizeof(exec_errno));
  close(errpipe[0]);
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    int status;
    waitpid(pid, &status, 0);
    close(pipefd[0]);
    res.error = "cannot execute " + o.qemu_binary + ": " + std::strerror(exec_errno);
    return res;
  }
  res.launched = true;

  std::ofstream log;
  if (!o.log_file.empty()) log.open(o.log_file, std::ios::binary | std::ios::trunc);

  auto deadline = start + o.timeout;
  bool eof = false;
  char buf[8192];
  while (!eof) {
    auto now = Clock::now();
    if (now >= deadline) {
      res.timed_out = true;
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    struct pollfd pfd = {pipefd[0], POLLIN, 0};
    int pr = poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 500)));
    if (pr < 0) {
      if (errno == EINTR) continue;
      res.error = std::string("poll: ") + std::strerror(errno);
      break;
    }
    if (pr == 0) continue;
    ssize_t r = read(pipefd[0], buf, sizeof(buf));
    if (r < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      res.error = std::string("read: ") + std::strerror(errno);
      break;
    }
    if (r == 0) {
      eof = true;
      break;
    }
    res.output.append(buf, static_cast<size_t>(r));
    if (log) log.write(buf, r), log.flush();
  }
  close(pipefd[0]);

  int status = 0;
  bool reaped;
  if (res.timed_out || !eof) {
    kill(-pid, SIGTERM);
    reaped = wait_until(pid, status, Clock::now() + std::chrono::seconds(5));
    if (!reaped) {
      kill(-pid, SIGKILL);
      reaped = wait_until(pid, status, Clock::now() + std::chrono::seconds(5));
    }
  } else {
    // Output closed: qemu is exiting; give it a moment, then insist.
    reaped = wait_until(pid, status, Clock::now() + std::chrono::seconds(10));
    if (!reaped) {
      res.error = "qemu closed its output but did not exit";
      kill(-pid, SIGKILL);
      reaped = wait_until(pid, status, Clock::now() + std::chrono::seconds(5));
    }
  }
  res.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  if (reaped) {
    if (WIFEXITED(status)) {
      res.exited = !res.timed_out;
      res.exit_status = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      res.term_signal = WTERMSIG(status);
    }
  } else if (res.error.empty()) {
    res.error = "could not reap qemu (pid " + std::to_string(pid) + ")";
  }
  return res;
}

}  // namespace peinit::testing
