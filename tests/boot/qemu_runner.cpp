#include "qemu_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
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

// Connects to QEMU's monitor socket, retrying while QEMU starts; -1 on failure.
int connect_monitor(const std::string& path, Clock::time_point deadline) {
  for (;;) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    close(fd);
    if (Clock::now() >= deadline) return -1;
    usleep(50 * 1000);
  }
}

// Appends whatever the monitor has said to `log` (non-blocking).
void drain_monitor(int fd, std::string& log) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) return;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] != '\r') log.push_back(buf[i]);
    }
  }
}

// Appends what QEMU has written to the results channel's file since the last call.
void drain_results(int fd, std::string& results) {
  char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) results.append(buf, static_cast<size_t>(n));
}

// Sends each monitor step whose text has appeared on the console or the results channel.
void send_monitor_steps(const QemuOptions& o, int monitor_fd, QemuResult& res) {
  if (monitor_fd < 0) return;
  drain_monitor(monitor_fd, res.monitor_log);
  while (res.monitor_steps_sent < o.monitor.size()) {
    const std::string& after = o.monitor[res.monitor_steps_sent].after;
    if (res.output.find(after) == std::string::npos &&
        res.results.find(after) == std::string::npos) {
      return;
    }
    std::string line = o.monitor[res.monitor_steps_sent].command + "\n";
    ssize_t w = write(monitor_fd, line.data(), line.size());
    res.monitor_log += "\n>>> " + line;
    if (w != static_cast<ssize_t>(line.size())) res.monitor_log += "(short write)\n";
    ++res.monitor_steps_sent;
  }
}

}  // namespace

std::vector<std::string> swtpm_command(const std::string& swtpm_binary,
                                       const std::string& state_dir, const std::string& socket) {
  // --terminate: swtpm ends when QEMU closes the control channel (it is killed after QEMU
  // anyway); QEMU sends the TPM's init itself.
  return {swtpm_binary, "socket", "--tpm2", "--tpmstate", "dir=" + state_dir,
          "--ctrl", "type=unixio,path=" + socket, "--terminate"};
}

std::vector<std::string> qemu_command(const QemuOptions& o, const std::string& monitor_socket,
                                      const std::string& results_file,
                                      const std::string& tpm_socket) {
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
  if (!results_file.empty()) {
    // The console first, explicitly: a -device isa-serial turns QEMU's default serial port off.
    // Then the third legacy port (index 2: 0x3e8, IRQ 4), the guest's ttyS2 in both kernels.
    argv.insert(argv.end(), {"-serial", "mon:stdio", "-chardev",
                             "file,id=results,path=" + results_file, "-device",
                             "isa-serial,chardev=results,index=2"});
  }
  if (!monitor_socket.empty()) {
    argv.push_back("-monitor");
    argv.push_back("unix:" + monitor_socket + ",server=on,wait=off");
  }
  if (!tpm_socket.empty()) {
    argv.insert(argv.end(), {"-chardev", "socket,id=chrtpm,path=" + tpm_socket, "-tpmdev",
                             "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"});
  }
  argv.insert(argv.end(), o.extra_args.begin(), o.extra_args.end());
  return argv;
}

std::string QemuResult::describe() const {
  std::ostringstream s;
  double secs = static_cast<double>(elapsed.count()) / 1000.0;
  if (!launched) {
    s << "qemu was not started: " << error;
  } else if (stalled_before_user_space) {
    s << "stalled in the guest kernel: no \"Run ... as init process\" after " << secs
      << " s, killed";
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
  if (!retried_after.empty()) {
    s << "; this was the second boot, the first " << retried_after.substr(0, retried_after.find('\n'));
  }
  return s.str();
}

std::vector<std::string> QemuResult::lines() const { return split_lines(output); }

std::vector<std::string> QemuResult::result_lines() const { return split_lines(results); }

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
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

namespace {

QemuResult run_qemu_once(const QemuOptions& o) {
  QemuResult res;
  // A private directory for the results channel's file and the monitor socket.
  char tmpl[] = "/tmp/peinit-qemu-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    res.error = std::string("mkdtemp: ") + std::strerror(errno);
    return res;
  }
  const std::string scratch = tmpl;
  const std::string results_path = scratch + "/results";
  const std::string monitor_path = o.monitor.empty() ? "" : scratch + "/monitor.sock";
  const std::string tpm_socket = o.tpm ? scratch + "/swtpm.sock" : "";
  struct ScratchCleanup {
    std::string dir;
    pid_t swtpm = -1;
    ~ScratchCleanup() {
      if (swtpm > 0) {
        kill(swtpm, SIGTERM);
        int st = 0;
        if (!wait_until(swtpm, st, Clock::now() + std::chrono::seconds(5))) {
          kill(swtpm, SIGKILL);
          waitpid(swtpm, &st, 0);
        }
      }
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{scratch};
  // Created here, read while QEMU writes it (QEMU opens it without truncating an empty file).
  int results_fd = open(results_path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (results_fd < 0) {
    res.error = "cannot create " + results_path + ": " + std::strerror(errno);
    return res;
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { close(fd); }
  } results_closer{results_fd};
  res.command = qemu_command(o, monitor_path, results_path, tpm_socket);
  if (o.kernel.empty() || access(o.kernel.c_str(), R_OK) != 0) {
    res.error = "kernel image not readable: '" + o.kernel + "'";
    return res;
  }
  if (o.initrd.empty() || access(o.initrd.c_str(), R_OK) != 0) {
    res.error = "initrd not readable: '" + o.initrd + "'";
    return res;
  }

  if (o.tpm) {
    const std::string state = scratch + "/tpm";
    const std::string swtpm_log = scratch + "/swtpm.log";
    mkdir(state.c_str(), 0700);
    const std::vector<std::string> cmd = swtpm_command(o.swtpm_binary, state, tpm_socket);
    pid_t tpm_pid = fork();
    if (tpm_pid < 0) {
      res.error = std::string("fork: ") + std::strerror(errno);
      return res;
    }
    if (tpm_pid == 0) {
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, STDIN_FILENO);
      int out = open(swtpm_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (out >= 0) {
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
      }
      std::vector<char*> args;
      for (const auto& a : cmd) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execvp(args[0], args.data());
      _exit(127);
    }
    cleanup.swtpm = tpm_pid;
    // QEMU must find the socket when it starts.
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (access(tpm_socket.c_str(), F_OK) != 0) {
      int st = 0;
      if (waitpid(tpm_pid, &st, WNOHANG) == tpm_pid || Clock::now() >= until) {
        if (waitpid(tpm_pid, &st, WNOHANG) == tpm_pid) cleanup.swtpm = -1;
        std::ifstream in(swtpm_log);
        res.swtpm_log.assign(std::istreambuf_iterator<char>(in), {});
        res.error = "swtpm did not start (" + tpm_socket + "): " + res.swtpm_log;
        return res;
      }
      usleep(20 * 1000);
    }
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
  int monitor_fd = -1;
  if (!monitor_path.empty()) {
    monitor_fd = connect_monitor(monitor_path, Clock::now() + std::chrono::seconds(20));
    if (monitor_fd < 0) res.error = "cannot connect to the QEMU monitor at " + monitor_path;
  }
  const auto user_space_deadline = start + o.user_space_within;
  bool in_user_space = o.user_space_within.count() == 0;
  bool eof = false;
  char buf[8192];
  while (!eof) {
    auto now = Clock::now();
    if (now >= deadline) {
      res.timed_out = true;
      break;
    }
    if (!in_user_space && now >= user_space_deadline) {
      res.stalled_before_user_space = true;
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    struct pollfd pfd = {pipefd[0], POLLIN, 0};
    int pr = poll(&pfd, 1, static_cast<int>(std::min<long long>(left, 100)));
    if (pr < 0) {
      if (errno == EINTR) continue;
      res.error = std::string("poll: ") + std::strerror(errno);
      break;
    }
    drain_results(results_fd, res.results);
    send_monitor_steps(o, monitor_fd, res);
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
    const size_t before = res.output.size();
    res.output.append(buf, static_cast<size_t>(r));
    if (!in_user_space) {
      const size_t from = before > 64 ? before - 64 : 0;
      in_user_space = res.output.find(kUserSpaceMarker, from) != std::string::npos;
    }
    if (log) log.write(buf, r), log.flush();
    send_monitor_steps(o, monitor_fd, res);
  }
  if (monitor_fd >= 0) {
    drain_monitor(monitor_fd, res.monitor_log);
    close(monitor_fd);
  }
  close(pipefd[0]);

  int status = 0;
  // QEMU has written the last of the channel once it has exited (read again below).

  bool reaped;
  if (res.timed_out || res.stalled_before_user_space || !eof) {
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
  drain_results(results_fd, res.results);
  if (!o.log_file.empty()) std::ofstream(o.log_file + ".results", std::ios::binary) << res.results;
  if (o.tpm) {
    std::ifstream in(scratch + "/swtpm.log");
    res.swtpm_log.assign(std::istreambuf_iterator<char>(in), {});
  }
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

}  // namespace

QemuResult run_qemu(const QemuOptions& o) {
  QemuResult first = run_qemu_once(o);
  if (!first.stalled_before_user_space) return first;
  const auto used = std::chrono::ceil<std::chrono::seconds>(first.elapsed);
  // What the stalled boot was, for the test's log and the result: the kernel's last lines.
  std::vector<std::string> lines = first.lines();
  std::string tail;
  for (size_t i = lines.size() > 15 ? lines.size() - 15 : 0; i < lines.size(); ++i) {
    tail += "  | " + lines[i] + "\n";
  }
  std::string note = first.describe() + "\n" + tail;
  std::fprintf(stderr, "qemu_runner: boot %s", note.c_str());
  if (used >= o.timeout) return first;
  if (!o.log_file.empty()) std::ofstream(o.log_file + ".stalled", std::ios::binary) << first.output;
  QemuOptions again = o;
  again.timeout = o.timeout - used;
  std::fprintf(stderr, "qemu_runner: booting once more (%lld s left of %lld s)\n",
               static_cast<long long>(again.timeout.count()),
               static_cast<long long>(o.timeout.count()));
  QemuResult second = run_qemu_once(again);
  second.retried_after = std::move(note);
  second.elapsed += first.elapsed;
  return second;
}

}  // namespace peinit::testing
