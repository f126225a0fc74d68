/* Guest side of the benchmark (tests/bench/run): a static service run after peinit's stages.
 *
 *   bench_probe peinit             peinit's module stage already loaded the set; only report
 *   bench_probe modprobe NAME...   time `/sbin/modprobe -a NAME...` (kmod, sequential)
 *   bench_probe loop LISTFILE      time finit_module() on each path of LISTFILE, in order (the
 *                                  floor: no lookup, no dependency work, one syscall each)
 *   bench_probe levels LISTFILE    the same over "LEVEL PATH" lines sorted by level, each level
 *                                  loaded by two threads, the next level only once it is done
 *                                  (a perfect two-worker scheduler over the dependency levels)
 *
 * The baseline modes load modules: their unit grants SeLoadDriverPrivilege (CAP_SYS_MODULE; a
 * service loses it otherwise, R-28), and every unit whose kernel counts load syscalls grants
 * SeTcbPrivilege (CAP_SYS_ADMIN) to mount tracefs (bench.py, probe_privileges).
 *
 * Then it reports, one "BENCH key=value" line each (values without spaces; errors as errno
 * names):
 *   cap_eff                           its effective capabilities (/proc/self/status CapEff)
 *   load_ms, load_failed              (modprobe and loop modes) wall time of the loads
 *   loop_error=PATH:ERRNO             (loop modes) a load that failed
 *   pid1_rss_kb, pid1_hwm_kb, pid1_threads   /proc/1/status (peinit after every stage, once
 *                                     it has settled: asleep for 3 samples 100 ms apart), and
 *   pid1_rss_{anon,file,shmem}_kb     what the resident set is made of
 *   proc_modules                      lines in /proc/modules
 *   (peinit mode) BENCH_RECORD <line>  every line of /run/peinit/modules.json
 *   init_module_calls, finit_module_calls    load syscalls the kernel saw since boot, counted
 *                                     from the syscall tracepoints (kernel command line
 *                                     trace_event=syscalls:sys_enter_init_module,...);
 *                                     "n/a" when the kernel has no tracefs, with
 *   load_syscalls_error               why (no-tracefs, mount-tracefs:EPERM, open-trace:ERRNO)
 * and "BENCH done", all on the results channel (tests/boot/channel.h: the guest's /dev/ttyS2,
 * `peinit-image boot --results FILE`), where no kernel or PID-1 line can cut one. The unit gives
 * it exit_action = "poweroff".
 *
 *   bench-real-init                (this program under that name, the realroot part's init=) writes
 *                                  "peinit-bench: real init starts" to /dev/kmsg and execs
 *                                  /lib/systemd/systemd: the moment the initramfs (peinit's or
 *                                  initramfs-tools's) handed over, in the same clock as its
 *                                  "Run /init" line. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../boot/channel.h"

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static int run_modprobe(int argc, char** argv) {
  /* argv: NAME... -> /sbin/modprobe -a NAME... */
  char** args = calloc((size_t)argc + 3, sizeof(char*));
  if (args == NULL) return -1;
  args[0] = "modprobe";
  args[1] = "-a";
  for (int i = 0; i < argc; ++i) args[i + 2] = argv[i];
  double start = now_ms();
  pid_t pid = fork();
  if (pid == 0) {
    execv("/sbin/modprobe", args);
    perror("bench_probe: exec /sbin/modprobe");
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) {
    perror("bench_probe: modprobe");
    return -1;
  }
  double elapsed = now_ms() - start;
  printf("BENCH load_ms=%.1f\n", elapsed);
  printf("BENCH load_failed=%d\n", WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1);
  free(args);
  return 0;
}

/* One finit_module() of `path`; 0, or 1 when it failed with anything but EEXIST. */
static int load_path(const char* path) {
  int failed = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || syscall(SYS_finit_module, fd, "", 0) != 0) {
    if (errno != EEXIST) {
      printf("BENCH loop_error=%s:%s\n", path, strerrorname_np(errno));
      failed = 1;
    }
  }
  if (fd >= 0) close(fd);
  return failed;
}

static int run_loop(const char* list) {
  FILE* f = fopen(list, "r");
  if (f == NULL) {
    printf("BENCH error=cannot-open-%s\n", list);
    return -1;
  }
  char path[4096];
  int failed = 0;
  double start = now_ms();
  while (fgets(path, sizeof path, f) != NULL) {
    path[strcspn(path, "\n")] = '\0';
    if (path[0] == '\0') continue;
    failed += load_path(path);
  }
  double elapsed = now_ms() - start;
  fclose(f);
  printf("BENCH load_ms=%.1f\n", elapsed);
  printf("BENCH load_failed=%d\n", failed);
  return 0;
}

struct level_work {
  char** paths;
  int count;
  int next; /* guarded by lock */
  int failed;
  pthread_mutex_t lock;
};

static void* level_worker(void* arg) {
  struct level_work* w = arg;
  for (;;) {
    pthread_mutex_lock(&w->lock);
    int i = w->next < w->count ? w->next++ : -1;
    pthread_mutex_unlock(&w->lock);
    if (i < 0) return NULL;
    int f = load_path(w->paths[i]);
    pthread_mutex_lock(&w->lock);
    w->failed += f;
    pthread_mutex_unlock(&w->lock);
  }
}

static int run_levels(const char* list) {
  FILE* f = fopen(list, "r");
  if (f == NULL) {
    printf("BENCH error=cannot-open-%s\n", list);
    return -1;
  }
  int levels[4096];
  char* paths[4096];
  int n = 0;
  char line[4096];
  while (n < 4096 && fgets(line, sizeof line, f) != NULL) {
    char path[4096];
    if (sscanf(line, "%d %4095s", &levels[n], path) != 2) continue;
    paths[n++] = strdup(path);
  }
  fclose(f);
  int failed = 0;
  double start = now_ms();
  for (int first = 0; first < n;) {
    int end = first;
    while (end < n && levels[end] == levels[first]) ++end;
    struct level_work w = {paths + first, end - first, 0, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t t;
    int threaded = w.count > 1 && pthread_create(&t, NULL, level_worker, &w) == 0;
    level_worker(&w);
    if (threaded) pthread_join(t, NULL);
    failed += w.failed;
    first = end;
  }
  double elapsed = now_ms() - start;
  for (int i = 0; i < n; ++i) free(paths[i]);
  printf("BENCH load_ms=%.1f\n", elapsed);
  printf("BENCH load_failed=%d\n", failed);
  return 0;
}

/* PID 1's state letter from /proc/1/stat ('S' asleep, 'R' running), '?' when unreadable. */
static char pid1_state(void) {
  FILE* f = fopen("/proc/1/stat", "r");
  char buf[512];
  char state = '?';
  if (f != NULL) {
    if (fgets(buf, sizeof buf, f) != NULL) {
      char* paren = strrchr(buf, ')');
      if (paren != NULL && paren[1] == ' ') state = paren[2];
    }
    fclose(f);
  }
  return state;
}

/* PID 1 settles after starting the services (it trims its memory then): its figures are read
 * once it has been asleep for three samples 100 ms apart (at most 5 s). */
static void wait_pid1_idle(void) {
  int asleep = 0;
  for (int i = 0; i < 50 && asleep < 3; ++i) {
    asleep = pid1_state() == 'S' ? asleep + 1 : 0;
    usleep(100 * 1000);
  }
}

static void report_pid1(void) {
  wait_pid1_idle();
  FILE* f = fopen("/proc/1/status", "r");
  if (f == NULL) return;
  char line[512];
  long v;
  while (fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "VmRSS: %ld", &v) == 1) printf("BENCH pid1_rss_kb=%ld\n", v);
    if (sscanf(line, "VmHWM: %ld", &v) == 1) printf("BENCH pid1_hwm_kb=%ld\n", v);
    if (sscanf(line, "Threads: %ld", &v) == 1) printf("BENCH pid1_threads=%ld\n", v);
    if (sscanf(line, "RssAnon: %ld", &v) == 1) printf("BENCH pid1_rss_anon_kb=%ld\n", v);
    if (sscanf(line, "RssFile: %ld", &v) == 1) printf("BENCH pid1_rss_file_kb=%ld\n", v);
    if (sscanf(line, "RssShmem: %ld", &v) == 1) printf("BENCH pid1_rss_shmem_kb=%ld\n", v);
  }
  fclose(f);
}

static void report_proc_modules(void) {
  FILE* f = fopen("/proc/modules", "r");
  int n = 0;
  char line[4096];
  if (f != NULL) {
    while (fgets(line, sizeof line, f) != NULL) ++n;
    fclose(f);
  }
  printf("BENCH proc_modules=%d\n", n);
}

/* CapEff from /proc/self/status: what this probe may do (CAP_SYS_MODULE is bit 16). */
static void report_caps(void) {
  FILE* f = fopen("/proc/self/status", "r");
  char line[512];
  char caps[64];
  while (f != NULL && fgets(line, sizeof line, f) != NULL) {
    if (sscanf(line, "CapEff: %63s", caps) == 1) printf("BENCH cap_eff=%s\n", caps);
  }
  if (f != NULL) fclose(f);
}

static void no_load_syscalls(const char* why, int err) {
  printf("BENCH init_module_calls=n/a\nBENCH finit_module_calls=n/a\n");
  if (err != 0)
    printf("BENCH load_syscalls_error=%s:%s\n", why, strerrorname_np(err));
  else
    printf("BENCH load_syscalls_error=%s\n", why);
}

static void report_load_syscalls(void) {
  const char* dir = "/sys/kernel/tracing";
  struct stat st;
  if (stat(dir, &st) != 0) {
    no_load_syscalls("no-tracefs", 0);
    return;
  }
  if (mount("nodev", dir, "tracefs", 0, NULL) != 0 && errno != EBUSY) {
    no_load_syscalls("mount-tracefs", errno);
    return;
  }
  FILE* f = fopen("/sys/kernel/tracing/trace", "r");
  if (f == NULL) {
    no_load_syscalls("open-trace", errno);
    return;
  }
  long init_calls = 0, finit_calls = 0;
  char line[4096];
  while (fgets(line, sizeof line, f) != NULL) {
    if (line[0] == '#') continue;
    if (strstr(line, "sys_finit_module(") != NULL)
      ++finit_calls;
    else if (strstr(line, "sys_init_module(") != NULL)
      ++init_calls;
  }
  fclose(f);
  printf("BENCH init_module_calls=%ld\nBENCH finit_module_calls=%ld\n", init_calls, finit_calls);
}

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char* self = argc > 0 ? strrchr(argv[0], '/') : NULL;
  if (argc > 0 && strcmp(self != NULL ? self + 1 : argv[0], "bench-real-init") == 0) {
    int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
    static const char kLine[] = "<6>peinit-bench: real init starts\n";
    if (kmsg >= 0) {
      if (write(kmsg, kLine, sizeof kLine - 1) < 0) perror("bench_probe: /dev/kmsg");
      close(kmsg);
    }
    char* const init_argv[] = {"/lib/systemd/systemd", NULL};
    execv(init_argv[0], init_argv);
    perror("bench_probe: exec /lib/systemd/systemd");
    return 1;
  }
  if (argc < 2) {
    fprintf(stderr, "usage: bench_probe peinit | modprobe NAME... | loop LISTFILE | levels LISTFILE\n");
    return 2;
  }
  channel_stdout();
  int rc = 0;
  if (strcmp(argv[1], "modprobe") == 0 && argc > 2) {
    rc = run_modprobe(argc - 2, argv + 2);
  } else if (strcmp(argv[1], "loop") == 0 && argc == 3) {
    rc = run_loop(argv[2]);
  } else if (strcmp(argv[1], "levels") == 0 && argc == 3) {
    rc = run_levels(argv[2]);
  } else if (strcmp(argv[1], "peinit") != 0) {
    fprintf(stderr, "bench_probe: unknown mode %s\n", argv[1]);
    return 2;
  }
  if (strcmp(argv[1], "peinit") == 0) {
    FILE* rec = fopen("/run/peinit/modules.json", "r");
    char* line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (rec != NULL && (n = getline(&line, &cap, rec)) > 0) {
      line[strcspn(line, "\n")] = '\0';
      printf("BENCH_RECORD %s\n", line);
    }
    free(line);
    if (rec != NULL) fclose(rec);
  }
  report_caps();
  report_pid1();
  report_proc_modules();
  report_load_syscalls();
  printf("BENCH done\n");
  channel_flush();
  return rc == 0 ? 0 : 1;
}
