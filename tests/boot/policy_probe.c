/* policy_probe: the guest side of the lockdown/policy boot tests (lockdown_boot_test.cpp).
 *
 * Runs as a service after PID 1's boot stages, performs the checks named on its command line in
 * order and prints one line per check on the results channel (channel.h), where no kernel or
 * PID-1 line can land in the middle of one:
 *     PROBE <name> ok
 *     PROBE <name> FAIL <detail>
 * then "PROBE-DONE" and exits 0 (the unit's exit_action powers the machine off). Each line has
 * left the port before the next check runs (a "mark" is what the host acts on) and before the
 * probe exits.
 *
 * Each argument is NAME@KIND:ARGS, where an expected result is an errno name or 0:
 *   read:PATH=TEXT       the file's first line equals TEXT ("" for an empty line)
 *   contains:PATH~TEXT   the file contains TEXT
 *   exists:PATH / absent:PATH
 *   finit:PATH=RESULT    finit_module(open(PATH), "", 0)
 *   init:RESULT          init_module(NULL, 0, "") (patched kernel: EPERM before anything else)
 *   initfile:PATH=RESULT init_module of PATH's bytes
 *   delete:NAME=RESULT   delete_module(NAME, O_NONBLOCK)
 *   socket:FAMILY,TYPE=RESULT  socket(FAMILY, TYPE, 0) (numbers)
 *   lock:RESULT          module_lockdown(LOCK, runtime-syscall) (SeTcb: CAP_SYS_ADMIN)
 *   mark:TEXT            prints "PROBE-MARK TEXT" (the host acts on it, e.g. hot-plugs a device
 *                        through the QEMU monitor); always ok
 *   create:PATH[~TEXT]=RESULT  open(PATH, O_WRONLY|O_CREAT|O_TRUNC) and write TEXT (default
 *                        one byte): a new or replaced file
 *   run:PATH [ARG]=STATUS  runs PATH (with ARG) and compares its exit status
 *   write:PATH~TEXT=RESULT  open(PATH, O_WRONLY) and write TEXT (edit a file or a sysctl)
 *   replace:PATH~OLD~NEW=RESULT  read PATH, replace the first OLD by NEW, write it back
 *   rename:FROM,TO=RESULT rename(FROM, TO)
 *   remount:PATH=RESULT  mount(NULL, PATH, NULL, MS_REMOUNT, NULL): read-write again
 *   umount:PATH=RESULT   umount2(PATH, MNT_DETACH)
 *   ptrace:PID=RESULT    ptrace(PTRACE_ATTACH, PID) (detached again when it succeeds)
 *   wait:PATH=SECONDS    PATH appears within SECONDS
 *   waitfor:PATH~TEXT    the file contains TEXT within 90 s
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"

#include <linux/module_lockdown.h>

static const char *errname(int e) {
    switch (e) {
        case 0: return "0";
        case EPERM: return "EPERM";
        case ENOENT: return "ENOENT";
        case EEXIST: return "EEXIST";
        case EINVAL: return "EINVAL";
        case EFAULT: return "EFAULT";
        case ENOEXEC: return "ENOEXEC";
        case EBUSY: return "EBUSY";
        case EAFNOSUPPORT: return "EAFNOSUPPORT";
        case EKEYREJECTED: return "EKEYREJECTED";
        case ENOKEY: return "ENOKEY";
        case EBADMSG: return "EBADMSG";
        case ENOSYS: return "ENOSYS";
        case EROFS: return "EROFS";
        case ENOTDIR: return "ENOTDIR";
        case EXDEV: return "EXDEV";
        case EACCES: return "EACCES";
        case EWOULDBLOCK: return "EWOULDBLOCK";
        case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
        case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
        default: {
            static char buf[32];
            snprintf(buf, sizeof buf, "errno%d", e);
            return buf;
        }
    }
}

static void report(const char *name, int ok, const char *detail) {
    if (ok) {
        printf("PROBE %s ok\n", name);
    } else {
        printf("PROBE %s FAIL %s\n", name, detail);
    }
    channel_flush();
}

/* Compares a call's outcome (0 or errno) with the expected name. */
static void expect(const char *name, int got, const char *want) {
    char detail[256];
    snprintf(detail, sizeof detail, "got %s, want %s", errname(got), want);
    report(name, strcmp(errname(got), want) == 0, detail);
}

static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static void check(char *arg) {
    char *at = strchr(arg, '@');
    char *colon = at ? strchr(at, ':') : NULL;
    if (!at || !colon) {
        report(arg, 0, "bad check syntax");
        return;
    }
    *at = '\0';
    *colon = '\0';
    const char *name = arg, *kind = at + 1;
    char *rest = colon + 1;
    char detail[512];

    if (strcmp(kind, "create") == 0 || strcmp(kind, "write") == 0 ||
        strcmp(kind, "replace") == 0 || strcmp(kind, "rename") == 0 ||
        strcmp(kind, "remount") == 0 || strcmp(kind, "umount") == 0 ||
        strcmp(kind, "ptrace") == 0 || strcmp(kind, "run") == 0) {
        char *eq = strrchr(rest, '=');
        if (!eq) {
            report(name, 0, "missing =");
            return;
        }
        *eq = '\0';
        const char *want = eq + 1;
        int got = 0;
        if (strcmp(kind, "create") == 0 || strcmp(kind, "write") == 0) {
            const char *text = "x";
            char *tilde = strchr(rest, '~');
            if (tilde) {
                *tilde = '\0';
                text = tilde + 1;
            }
            int flags = strcmp(kind, "create") == 0 ? O_WRONLY | O_CREAT | O_TRUNC : O_WRONLY;
            int fd = open(rest, flags | O_CLOEXEC, 0644);
            if (fd < 0) {
                got = errno;
            } else {
                if (write(fd, text, strlen(text)) < 0) got = errno;
                if (close(fd) != 0 && got == 0) got = errno;
            }
        } else if (strcmp(kind, "replace") == 0) {
            char *old = strchr(rest, '~');
            char *new_text = old ? strchr(old + 1, '~') : NULL;
            if (!new_text) {
                report(name, 0, "replace needs PATH~OLD~NEW");
                return;
            }
            *old++ = '\0';
            *new_text++ = '\0';
            size_t len = 0;
            char *text = read_file(rest, &len);
            char *at_old = text ? strstr(text, old) : NULL;
            if (!at_old) {
                snprintf(detail, sizeof detail, "%s has no \"%s\"", rest, old);
                report(name, 0, detail);
                free(text);
                return;
            }
            int fd = open(rest, O_WRONLY | O_TRUNC | O_CLOEXEC);
            if (fd < 0) {
                got = errno;
            } else {
                size_t head = (size_t)(at_old - text);
                const char *tail = at_old + strlen(old);
                if (write(fd, text, head) < 0 || write(fd, new_text, strlen(new_text)) < 0 ||
                    write(fd, tail, strlen(tail)) < 0) {
                    got = errno;
                }
                close(fd);
            }
            free(text);
        } else if (strcmp(kind, "rename") == 0) {
            char *comma = strchr(rest, ',');
            if (!comma) {
                report(name, 0, "rename needs FROM,TO");
                return;
            }
            *comma = '\0';
            got = rename(rest, comma + 1) == 0 ? 0 : errno;
        } else if (strcmp(kind, "remount") == 0) {
            got = mount(NULL, rest, NULL, MS_REMOUNT, NULL) == 0 ? 0 : errno;
        } else if (strcmp(kind, "run") == 0) {
            char *arg = strchr(rest, ' ');
            if (arg) *arg++ = '\0';
            char *argv[] = {rest, arg, NULL};
            pid_t pid = fork();
            if (pid == 0) {
                execv(rest, argv);
                _exit(127);
            }
            int status = 0;
            if (pid < 0 || waitpid(pid, &status, 0) < 0) {
                got = errno;
            } else {
                char text[32];
                snprintf(text, sizeof text, "%d", WIFEXITED(status) ? WEXITSTATUS(status) : 128);
                snprintf(detail, sizeof detail, "%s exited %s, want %s", rest, text, want);
                report(name, strcmp(text, want) == 0, detail);
                return;
            }
        } else if (strcmp(kind, "umount") == 0) {
            got = umount2(rest, MNT_DETACH) == 0 ? 0 : errno;
        } else {
            pid_t pid = (pid_t)atoi(rest);
            if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) == 0) {
                waitpid(pid, NULL, __WALL);
                ptrace(PTRACE_DETACH, pid, NULL, NULL);
            } else {
                got = errno;
            }
        }
        expect(name, got, want);
    } else if (strcmp(kind, "read") == 0 || strcmp(kind, "finit") == 0 ||
        strcmp(kind, "initfile") == 0 || strcmp(kind, "delete") == 0 ||
        strcmp(kind, "socket") == 0) {
        char *eq = strrchr(rest, '=');
        if (!eq) {
            report(name, 0, "missing =");
            return;
        }
        *eq = '\0';
        const char *want = eq + 1;
        if (strcmp(kind, "read") == 0) {
            char *text = read_file(rest, NULL);
            if (!text) {
                snprintf(detail, sizeof detail, "cannot read %s: %s", rest, errname(errno));
                report(name, 0, detail);
                return;
            }
            text[strcspn(text, "\n")] = '\0';
            snprintf(detail, sizeof detail, "%s reads \"%s\", want \"%s\"", rest, text, want);
            report(name, strcmp(text, want) == 0, detail);
            free(text);
        } else if (strcmp(kind, "finit") == 0) {
            int fd = open(rest, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                snprintf(detail, sizeof detail, "open %s: %s", rest, errname(errno));
                report(name, 0, detail);
                return;
            }
            long r = syscall(SYS_finit_module, fd, "", 0);
            expect(name, r == 0 ? 0 : errno, want);
            close(fd);
        } else if (strcmp(kind, "initfile") == 0) {
            size_t len = 0;
            char *image = read_file(rest, &len);
            if (!image) {
                snprintf(detail, sizeof detail, "read %s: %s", rest, errname(errno));
                report(name, 0, detail);
                return;
            }
            long r = syscall(SYS_init_module, image, (unsigned long)len, "");
            expect(name, r == 0 ? 0 : errno, want);
            free(image);
        } else if (strcmp(kind, "delete") == 0) {
            long r = syscall(SYS_delete_module, rest, O_NONBLOCK);
            expect(name, r == 0 ? 0 : errno, want);
        } else {
            int family = 0, type = 0;
            if (sscanf(rest, "%d,%d", &family, &type) != 2) {
                report(name, 0, "socket needs FAMILY,TYPE");
                return;
            }
            int s = socket(family, type, 0);
            expect(name, s >= 0 ? 0 : errno, want);
            if (s >= 0) close(s);
        }
    } else if (strcmp(kind, "lock") == 0) {
        long r = syscall(__NR_module_lockdown, MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
        expect(name, r == 0 ? 0 : errno, rest);
    } else if (strcmp(kind, "mark") == 0) {
        printf("PROBE-MARK %s\n", rest);
        report(name, 1, "");
    } else if (strcmp(kind, "wait") == 0 || strcmp(kind, "waitfor") == 0) {
        int contains = strcmp(kind, "waitfor") == 0;
        char *sep = strrchr(rest, contains ? '~' : '=');
        if (!sep) {
            report(name, 0, contains ? "missing ~" : "missing =");
            return;
        }
        *sep = '\0';
        const char *what = sep + 1;
        int seconds = contains ? 90 : atoi(what);
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        int ok = 0;
        for (;;) {
            if (contains) {
                char *text = read_file(rest, NULL);
                ok = text && strstr(text, what) != NULL;
                free(text);
            } else {
                struct stat st;
                ok = stat(rest, &st) == 0;
            }
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (ok || now.tv_sec - start.tv_sec >= seconds) break;
            usleep(100 * 1000);
        }
        if (contains) {
            char *text = read_file(rest, NULL);
            snprintf(detail, sizeof detail, "%s did not contain \"%s\" within %d s: %.300s", rest,
                     what, seconds, text ? text : "(unreadable)");
            free(text);
        } else {
            snprintf(detail, sizeof detail, "%s did not appear within %d s", rest, seconds);
        }
        report(name, ok, detail);
    } else if (strcmp(kind, "init") == 0) {
        long r = syscall(SYS_init_module, NULL, 0UL, "");
        expect(name, r == 0 ? 0 : errno, rest);
    } else if (strcmp(kind, "contains") == 0) {
        char *tilde = strchr(rest, '~');
        if (!tilde) {
            report(name, 0, "missing ~");
            return;
        }
        *tilde = '\0';
        char *text = read_file(rest, NULL);
        if (!text) {
            snprintf(detail, sizeof detail, "cannot read %s: %s", rest, errname(errno));
            report(name, 0, detail);
            return;
        }
        snprintf(detail, sizeof detail, "%s does not contain \"%s\": %.300s", rest, tilde + 1,
                 text);
        report(name, strstr(text, tilde + 1) != NULL, detail);
        free(text);
    } else if (strcmp(kind, "exists") == 0 || strcmp(kind, "absent") == 0) {
        struct stat st;
        int there = stat(rest, &st) == 0;
        int want_there = strcmp(kind, "exists") == 0;
        snprintf(detail, sizeof detail, "%s %s", rest, there ? "exists" : "is absent");
        report(name, there == want_there, detail);
    } else {
        report(name, 0, "unknown check kind");
    }
}

int main(int argc, char **argv) {
    channel_stdout();
    for (int i = 1; i < argc; ++i) check(argv[i]);
    printf("PROBE-DONE\n");
    channel_flush();
    return 0;
}
