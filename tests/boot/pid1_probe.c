// Test service for the PID-1 boot tests: runs inside the guest as a peinit service, checks what
// PID 1 guarantees (mounts, zombie reaping, boot records) and prints one line per check on the
// results channel (channel.h):
//   PROBE <name> ok
//   PROBE <name> FAIL <detail>
// With argument "sigterm" it finally sends SIGTERM to PID 1 and waits to be terminated by the
// orderly shutdown.
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channel.h"

static void report(const char* name, int ok, const char* detail) {
  if (ok) {
    printf("PROBE %s ok\n", name);
  } else {
    printf("PROBE %s FAIL %s\n", name, detail);
  }
  channel_flush();
}

static int mounted(const char* target, const char* fstype) {
  FILE* f = fopen("/proc/mounts", "r");
  if (!f) return 0;
  char src[256], dir[256], type[64];
  int found = 0;
  while (fscanf(f, "%255s %255s %63s %*[^\n]", src, dir, type) == 3) {
    if (strcmp(dir, target) == 0 && strcmp(type, fstype) == 0) found = 1;
  }
  fclose(f);
  return found;
}

// Processes in state Z whose parent is PID 1.
static int zombies_of_init(void) {
  DIR* d = opendir("/proc");
  if (!d) return -1;
  int count = 0;
  struct dirent* e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE* f = fopen(path, "r");
    if (!f) continue;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char* close_paren = strrchr(buf, ')');
    char state;
    int ppid;
    if (close_paren && sscanf(close_paren + 2, "%c %d", &state, &ppid) == 2 && state == 'Z' &&
        ppid == 1) {
      ++count;
    }
  }
  closedir(d);
  return count;
}

int main(int argc, char** argv) {
  channel_stdout();
  report("pid1_is_peinit", getppid() == 1, "parent is not PID 1");
  report("mount_proc", mounted("/proc", "proc"), "/proc is not mounted");
  report("mount_sys", mounted("/sys", "sysfs"), "/sys is not mounted");
  report("mount_dev", mounted("/dev", "devtmpfs"), "/dev is not devtmpfs");
  report("mount_run", mounted("/run", "tmpfs"), "/run is not tmpfs");
  struct stat st;
  report("record_policy", stat("/run/peinit/policy.json", &st) == 0, strerror(errno));
  report("record_lockdown", stat("/run/peinit/lockdown.json", &st) == 0, strerror(errno));

  // Orphan five grandchildren: their parent exits at once, so they are re-parented to PID 1
  // and become zombies when they exit, until PID 1 reaps them.
  pid_t child = fork();
  if (child == 0) {
    for (int i = 0; i < 5; ++i) {
      if (fork() == 0) {
        usleep(200 * 1000);
        _exit(0);
      }
    }
    _exit(0);
  }
  waitpid(child, NULL, 0);
  usleep(300 * 1000);  // the grandchildren have exited by now
  int zombies = -1;
  for (int i = 0; i < 20; ++i) {  // give PID 1 up to 2 s to reap
    zombies = zombies_of_init();
    if (zombies == 0) break;
    usleep(100 * 1000);
  }
  char detail[64];
  snprintf(detail, sizeof detail, "%d zombies of PID 1 left", zombies);
  report("orphans_reaped", zombies == 0, detail);

  if (argc > 1 && strcmp(argv[1], "sigterm") == 0) {
    // PID 1's shutdown answers with SIGTERM to every process at once, possibly before kill()
    // returns here: held until the result is reported.
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    int sent = kill(1, SIGTERM);
    report("sigterm_sent", sent == 0, strerror(errno));
    sigprocmask(SIG_UNBLOCK, &term, NULL);
    // The shutdown sends SIGTERM to every process; we wait for it.
    for (int i = 0; i < 100; ++i) usleep(100 * 1000);
    report("terminated_by_shutdown", 0, "still running 10 s after SIGTERM to PID 1");
  }
  return 0;
}
