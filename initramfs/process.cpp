#include "initramfs/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>

extern char** environ;

namespace peinit::image {

std::string FindProgram(const std::string& name) {
    if (name.find('/') != std::string::npos) return ::access(name.c_str(), X_OK) == 0 ? name : "";
    const char* env = std::getenv("PATH");
    std::string path = env != nullptr ? env : "/usr/local/bin:/usr/bin:/bin";
    path += ":/usr/local/sbin:/usr/sbin:/sbin";
    size_t start = 0;
    while (start <= path.size()) {
        size_t colon = path.find(':', start);
        if (colon == std::string::npos) colon = path.size();
        std::string dir = path.substr(start, colon - start);
        if (!dir.empty()) {
            std::string cand = dir + "/" + name;
            struct stat st;
            if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                ::access(cand.c_str(), X_OK) == 0)
                return cand;
        }
        start = colon + 1;
    }
    return "";
}

namespace {

std::vector<char*> Argv(const std::vector<std::string>& argv) {
    std::vector<char*> out;
    for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
    out.push_back(nullptr);
    return out;
}

int DecodeStatus(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

}  // namespace

Result<CommandResult> RunCapture(const std::vector<std::string>& argv, bool merge_stderr) {
    if (argv.empty()) return Err("empty command");
    std::string prog = FindProgram(argv[0]);
    if (prog.empty()) return Err(argv[0] + ": command not found");
    int pipefd[2];
    if (::pipe2(pipefd, O_CLOEXEC) != 0) return ErrnoErr("pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    if (merge_stderr) posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    auto args = Argv(argv);
    pid_t pid;
    int rc = posix_spawn(&pid, prog.c_str(), &fa, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(pipefd[1]);
    if (rc != 0) {
        ::close(pipefd[0]);
        return ErrnoErr("cannot run " + prog, rc);
    }
    CommandResult res;
    char buf[65536];
    while (true) {
        ssize_t n = ::read(pipefd[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        res.output.append(buf, static_cast<size_t>(n));
    }
    ::close(pipefd[0]);
    int status;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return ErrnoErr("waitpid " + prog);
    }
    res.status = DecodeStatus(status);
    return res;
}

Result<int> RunInherit(const std::vector<std::string>& argv, int timeout_seconds) {
    if (argv.empty()) return Err("empty command");
    std::string prog = FindProgram(argv[0]);
    if (prog.empty()) return Err(argv[0] + ": command not found");
    auto args = Argv(argv);
    pid_t pid;
    int rc = posix_spawn(&pid, prog.c_str(), nullptr, nullptr, args.data(), environ);
    if (rc != 0) return ErrnoErr("cannot run " + prog, rc);
    // Ctrl-C in the terminal reaches QEMU (same process group); we just wait for it.
    struct sigaction ign {
    }, old_int{};
    ign.sa_handler = SIG_IGN;
    ::sigaction(SIGINT, &ign, &old_int);
    struct timespec start;
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    bool timed_out = false, killed = false;
    int status = 0;
    while (true) {
        pid_t r = ::waitpid(pid, &status, timeout_seconds > 0 ? WNOHANG : 0);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) {
            ::sigaction(SIGINT, &old_int, nullptr);
            return ErrnoErr("waitpid " + prog);
        }
        if (timeout_seconds > 0) {
            struct timespec now;
            ::clock_gettime(CLOCK_MONOTONIC, &now);
            double elapsed = static_cast<double>(now.tv_sec - start.tv_sec) +
                             static_cast<double>(now.tv_nsec - start.tv_nsec) / 1e9;
            if (!timed_out && elapsed >= timeout_seconds) {
                timed_out = true;
                ::kill(pid, SIGTERM);
            } else if (timed_out && !killed && elapsed >= timeout_seconds + 5) {
                killed = true;
                ::kill(pid, SIGKILL);
            }
            ::poll(nullptr, 0, 50);
        }
    }
    ::sigaction(SIGINT, &old_int, nullptr);
    if (timed_out) return 124;
    return DecodeStatus(status);
}

}  // namespace peinit::image
