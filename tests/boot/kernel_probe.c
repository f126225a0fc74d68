/*
 * kernel_probe: /init of the kernel boot-test initramfs (static binary).
 *
 * Runs checks against the patched kernel (module signing floor,
 * module_lockdown(2), enforcement after the lock) and prints one line per
 * check on the console:
 *
 *     PROBE <name> ok <detail>
 *     PROBE <name> FAIL <detail>
 *
 * then "PROBE-END", and powers the machine off.  The mode comes from the
 * kernel command line: probe_mode=main (default), probe_mode=enforce
 * (boot with module.sig_enforce=1) or probe_mode=autoload (the one-way
 * DISABLE_AUTOLOAD and SEAL_MODPROBE ops, and the rate limit and encoding of
 * refusal records).
 *
 * Initramfs layout expected (built by the boot-test fixture):
 *   /init                      this program
 *   /sbin/test-modprobe        modprobe_helper (set as kernel.modprobe)
 *   /modules/signed/NAME.ko     signed test modules
 *   /modules/unsigned/NAME.ko   unsigned copies
 *   /modules/tampered/NAME.ko   signed, one code byte flipped
 *   /helper-modules/<alias>.ko modules the helper loads for a demand-load alias
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/module_lockdown.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channel.h"

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef EKEYREJECTED
#define EKEYREJECTED 129
#endif
#define TAINT_UNSIGNED_MODULE_BIT 13
#define AUDIT_KERNEL_OTHER_STR "type=1316"
#define HELPER_LOG "/helper.log"

static int failures;

static void out_line(const char *line)
{
	/* One write per line so lines do not interleave with other writers. */
	size_t len = strlen(line);
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, line, len);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				continue;
			return;
		}
		line += n;
		len -= (size_t)n;
	}
}

static void report(const char *name, bool ok, const char *fmt, ...)
{
	char detail[768], line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	for (char *p = detail; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	snprintf(line, sizeof(line), "PROBE %s %s %s\n", name, ok ? "ok" : "FAIL", detail);
	out_line(line);
	if (!ok)
		failures++;
}

/* ---- syscall wrappers -------------------------------------------------- */

static long lockdown(unsigned int op, unsigned int trigger)
{
	return syscall(__NR_module_lockdown, op, trigger);
}

static int finit_module_path(const char *path, const char *params, int *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		*err = errno;
		return -2; /* could not even open the file */
	}
	long rc = syscall(SYS_finit_module, fd, params ? params : "", 0);
	*err = rc == 0 ? 0 : errno;
	close(fd);
	return rc == 0 ? 0 : -1;
}

static long delete_module(const char *name, unsigned int flags)
{
	return syscall(SYS_delete_module, name, flags);
}

static const char *errname(int e)
{
	switch (e) {
	case 0: return "0";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EINVAL: return "EINVAL";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case ENOEXEC: return "ENOEXEC";
	case EWOULDBLOCK: return "EWOULDBLOCK";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EKEYREJECTED: return "EKEYREJECTED";
	case ENOSYS: return "ENOSYS";
	case EBUSY: return "EBUSY";
	default: return strerror(e);
	}
}

/* ---- file helpers ------------------------------------------------------- */

static char *read_file(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
}

static long read_long(const char *path)
{
	char *s = read_file(path, NULL);
	if (!s)
		return -1;
	long v = strtol(s, NULL, 10);
	free(s);
	return v;
}

static bool file_contains(const char *path, const char *needle)
{
	char *s = read_file(path, NULL);
	bool found = s && strstr(s, needle);
	free(s);
	return found;
}

/* The /proc/modules line of a module ("" if not loaded). */
static void module_line(const char *name, char *out, size_t outlen)
{
	out[0] = '\0';
	char *s = read_file("/proc/modules", NULL);
	if (!s)
		return;
	size_t nlen = strlen(name);
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, name, nlen) == 0 && line[nlen] == ' ') {
			snprintf(out, outlen, "%s", line);
			break;
		}
	}
	free(s);
}

/* Taint flags of a loaded module as shown in /proc/modules, e.g. "OE" ("" if none). */
static void module_taints(const char *name, char *out, size_t outlen)
{
	char line[512];
	out[0] = '\0';
	module_line(name, line, sizeof(line));
	char *open_paren = strrchr(line, '(');
	char *close_paren = open_paren ? strchr(open_paren, ')') : NULL;
	if (open_paren && close_paren && close_paren[1] == '\0')
		snprintf(out, outlen, "%.*s", (int)(close_paren - open_paren - 1), open_paren + 1);
}

static bool module_loaded(const char *name)
{
	char line[512];
	module_line(name, line, sizeof(line));
	return line[0] != '\0';
}

static int count_lines(const char *path, const char *needle)
{
	char *s = read_file(path, NULL);
	int n = 0;
	if (!s)
		return 0;
	for (char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(s);
	return n;
}

/* ---- /dev/kmsg ----------------------------------------------------------- */

/* All messages currently in the kernel log, one per line (prefix stripped). */
static char *kmsg_snapshot(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return strdup("");
	size_t cap = 1 << 16, len = 0;
	char *all = malloc(cap);
	char rec[8192];
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue; /* overwritten records: keep going */
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		rec[n] = '\0';
		char *msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		char *nl = strchr(msg, '\n'); /* drop continuation (dictionary) lines */
		if (nl)
			*nl = '\0';
		size_t ml = strlen(msg);
		if (len + ml + 2 > cap) {
			cap = (cap + ml + 2) * 2;
			all = realloc(all, cap);
		}
		memcpy(all + len, msg, ml);
		len += ml;
		all[len++] = '\n';
	}
	close(fd);
	all[len] = '\0';
	return all;
}

/*
 * Wait up to timeout_ms for a kernel log line containing every needle;
 * copies the line into found (if non-NULL).
 */
static bool kmsg_wait_line(int timeout_ms, char *found, size_t foundlen, const char *n1,
			   const char *n2, const char *n3, const char *n4)
{
	const char *needles[] = {n1, n2, n3, n4};
	for (int waited = 0;; waited += 100) {
		char *all = kmsg_snapshot();
		for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
			bool match = true;
			for (size_t i = 0; i < 4; i++)
				if (needles[i] && !strstr(line, needles[i]))
					match = false;
			if (match) {
				if (found)
					snprintf(found, foundlen, "%s", line);
				free(all);
				return true;
			}
		}
		free(all);
		if (waited >= timeout_ms)
			return false;
		struct timespec ts = {0, 100 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

static void kmsg_note(const char *text)
{
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		dprintf(fd, "<5>kernel_probe: %s\n", text);
		close(fd);
	}
}

/* ---- child processes ----------------------------------------------------- */

/* Keep only the capabilities in keep (bitmask over the first 32 caps). */
static int drop_caps_except(unsigned int keep)
{
	struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	data[0].effective = keep;
	data[0].permitted = keep;
	return (int)syscall(SYS_capset, &hdr, data);
}

static unsigned long long current_cap_eff(void)
{
	char *s = read_file("/proc/self/status", NULL);
	unsigned long long v = ~0ULL;
	char *p = s ? strstr(s, "CapEff:") : NULL;
	if (p)
		v = strtoull(p + 7, NULL, 16);
	free(s);
	return v;
}

static int wait_child(pid_t pid)
{
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}


static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void pin_to_cpu(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

/* /sys/module/NAME/initstate without the newline ("" if the module is absent). */
static void module_initstate(const char *name, char *out, size_t outlen)
{
	char path[256];
	snprintf(path, sizeof(path), "/sys/module/%s/initstate", name);
	char *s = read_file(path, NULL);
	snprintf(out, outlen, "%s", s ? s : "");
	free(s);
	char *nl = strchr(out, '\n');
	if (nl)
		*nl = '\0';
}

/* The audit encoding of a caller-chosen string (audit_log_n_untrustedstring). */
static void audit_encode(const char *in, char *out, size_t outlen)
{
	bool hex = false;
	for (const unsigned char *p = (const unsigned char *)in; *p; p++)
		if (*p == '"' || *p < 0x21 || *p > 0x7e)
			hex = true;
	if (!hex) {
		snprintf(out, outlen, "\"%s\"", in);
		return;
	}
	size_t n = 0;
	for (const unsigned char *p = (const unsigned char *)in; *p && n + 3 <= outlen; p++)
		n += (size_t)snprintf(out + n, outlen - n, "%02X", *p);
}

static int become_nobody(void)
{
	if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
		return -1;
	return 0;
}

/* ---- checks -------------------------------------------------------------- */

static void check_lock_state(const char *name, long want)
{
	long q = lockdown(MODULE_LOCKDOWN_QUERY, 0);
	int qerr = errno;
	long s = read_long(MODULE_LOCKDOWN_SYSCTL_PATH);
	report(name, q == want && s == want, "query=%ld(%s) sysctl=%ld want=%ld", q,
	       q < 0 ? errname(qerr) : "-", s, want);
}

static void expect_finit(const char *name, const char *path, const char *params, int want_err)
{
	int err = 0;
	int rc = finit_module_path(path, params, &err);
	bool ok = rc != -2 && err == want_err;
	report(name, ok, "finit_module(%s)=%s want=%s%s", path, errname(err), errname(want_err),
	       rc == -2 ? " (open failed)" : "");
}

static void child_cap_sys_module_only(void)
{
	/* uid 0, but only CAP_SYS_MODULE (SeLoadDriver) -- no CAP_SYS_ADMIN (SeTcb). */
	if (drop_caps_except(1u << CAP_SYS_MODULE) != 0) {
		report("capsysmodule_drop", false, "capset: %s", strerror(errno));
		_exit(1);
	}
	unsigned long long eff = current_cap_eff();
	report("capsysmodule_drop", getuid() == 0 && eff == (1ULL << CAP_SYS_MODULE),
	       "uid=%d CapEff=%016llx", (int)getuid(), eff);
	/* SeLoadDriver alone is enough to load a module ... */
	expect_finit("capsysmodule_can_load", "/modules/signed/peinit_test_slow1.ko", "delay_ms=1",
		     0);
	/* ... but not to lock. */
	errno = 0;
	long rc = lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	int err = errno;
	report("capsysmodule_lock_eperm", rc == -1 && err == EPERM, "LOCK=%ld errno=%s", rc,
	       errname(err));
	_exit(0);
}

static void child_nobody(void)
{
	if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
		report("nobody_setuid", false, "%s", strerror(errno));
		_exit(1);
	}
	unsigned long long eff = current_cap_eff();
	report("nobody_setuid", getuid() == 65534 && eff == 0, "uid=%d CapEff=%016llx",
	       (int)getuid(), eff);
	errno = 0;
	long q = lockdown(MODULE_LOCKDOWN_QUERY, 0);
	report("nobody_query", q == 0, "QUERY=%ld errno=%s", q, errname(q < 0 ? errno : 0));
	errno = 0;
	long q2 = lockdown(MODULE_LOCKDOWN_QUERY, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	report("nobody_query_with_trigger", q2 == 0, "QUERY=%ld errno=%s", q2,
	       errname(q2 < 0 ? errno : 0));
	long s = read_long(MODULE_LOCKDOWN_SYSCTL_PATH);
	report("nobody_sysctl_read", s == 0, "sysctl=%ld", s);
	errno = 0;
	long rc = lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	int err = errno;
	report("nobody_lock_eperm", rc == -1 && err == EPERM, "LOCK=%ld errno=%s", rc,
	       errname(err));
	_exit(0);
}

static pid_t run_child(void (*fn)(void))
{
	pid_t pid = fork();
	if (pid == 0)
		fn();
	return pid;
}

static void run_main(void)
{
	char line[1024];

	/* Initial state. */
	check_lock_state("initial_unlocked", 0);
	struct stat st;
	bool st_ok = stat(MODULE_LOCKDOWN_SYSCTL_PATH, &st) == 0;
	report("sysctl_mode_0444", st_ok && (st.st_mode & 07777) == 0444, "mode=%o",
	       st_ok ? (unsigned)(st.st_mode & 07777) : 0u);
	long taint0 = read_long("/proc/sys/kernel/tainted");
	report("initial_untainted", taint0 >= 0 && !(taint0 & (1L << TAINT_UNSIGNED_MODULE_BIT)),
	       "tainted=%ld", taint0);

	/* Signing floor "warn": signed loads, tampered rejected, unsigned loads + taints. */
	expect_finit("signed_loads", "/modules/signed/peinit_test_provider.ko", NULL, 0);
	char taints[32];
	module_line("peinit_test_provider", line, sizeof(line));
	module_taints("peinit_test_provider", taints, sizeof(taints));
	report("signed_not_tainted", line[0] && !strchr(taints, 'E') &&
	       kmsg_wait_line(0, NULL, 0, "peinit_test_provider: loaded", NULL, NULL, NULL),
	       "/proc/modules: %s", line);
	expect_finit("signed_dependency_loads", "/modules/signed/peinit_test_consumer.ko", NULL, 0);
	expect_finit("tampered_rejected", "/modules/tampered/peinit_test_param.ko", NULL,
		     EKEYREJECTED);
	report("tampered_not_loaded", !module_loaded("peinit_test_param"), "loaded=%d",
	       module_loaded("peinit_test_param"));
	expect_finit("unsigned_loads", "/modules/unsigned/peinit_test_param.ko",
		     "message=unsigned number=7", 0);
	long taint1 = read_long("/proc/sys/kernel/tainted");
	module_line("peinit_test_param", line, sizeof(line));
	module_taints("peinit_test_param", taints, sizeof(taints));
	report("unsigned_taints",
	       taint1 >= 0 && (taint1 & (1L << TAINT_UNSIGNED_MODULE_BIT)) && strchr(taints, 'E'),
	       "tainted=%ld /proc/modules: %s", taint1, line);
	report("unsigned_param_printed",
	       kmsg_wait_line(0, line, sizeof(line), "peinit_test_param: loaded message=unsigned",
			      "number=7", NULL, NULL),
	       "%s", line);
	expect_finit("failing_init_errno", "/modules/signed/peinit_test_fail.ko", NULL, ENODEV);

	/* Before the lock: unload works, and O_TRUNC ("rmmod -f") == plain rmmod. */
	errno = 0;
	long d1 = delete_module("peinit_test_provider", O_NONBLOCK);
	int e1 = errno;
	errno = 0;
	long d2 = delete_module("peinit_test_provider", O_NONBLOCK | O_TRUNC);
	int e2 = errno;
	report("prelock_force_unload_same_as_plain",
	       d1 == -1 && d2 == -1 && e1 == e2 && module_loaded("peinit_test_provider"),
	       "plain=%s force=%s (provider in use by consumer)", errname(e1), errname(e2));
	errno = 0;
	long d3 = delete_module("peinit_test_param", O_NONBLOCK);
	int e3 = d3 ? errno : 0;
	report("prelock_unload_works", d3 == 0 && !module_loaded("peinit_test_param"),
	       "delete_module(peinit_test_param)=%s", errname(e3));

	/* Before the lock: a demand load runs the helper (kernel.modprobe). */
	int h0 = count_lines(HELPER_LOG, "HELPER net-pf-38");
	errno = 0;
	int afd = socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int aerr = errno;
	int h1 = count_lines(HELPER_LOG, "HELPER net-pf-38");
	report("prelock_demand_load_runs_helper", afd >= 0 && h1 == h0 + 1 && module_loaded("af_alg"),
	       "socket(AF_ALG)=%d errno=%s helper runs %d->%d af_alg loaded=%d", afd,
	       errname(afd < 0 ? aerr : 0), h0, h1, module_loaded("af_alg"));
	if (afd >= 0)
		close(afd);

	/* SeLoadDriver (CAP_SYS_MODULE) without SeTcb (CAP_SYS_ADMIN) cannot lock. */
	pid_t cpid = run_child(child_cap_sys_module_only);
	int cst = wait_child(cpid);
	report("capsysmodule_child_exit", cst == 0, "status=%d", cst);
	check_lock_state("capsysmodule_flag_unchanged", 0);
	char pidstr[32];
	snprintf(pidstr, sizeof(pidstr), "pid=%d ", (int)cpid);
	report("refusal_logged",
	       kmsg_wait_line(2000, line, sizeof(line), "module_lockdown: lock refused", pidstr,
			      "trigger=runtime-syscall", "result=denied"),
	       "%s", line);
	report("refusal_audited",
	       kmsg_wait_line(3000, line, sizeof(line), AUDIT_KERNEL_OTHER_STR,
			      "op=module_lockdown action=lock trigger=runtime-syscall result=denied", pidstr,
			      "res=0"),
	       "%s", line);

	/* Unprivileged caller: QUERY works, LOCK does not. */
	pid_t npid = run_child(child_nobody);
	int nst = wait_child(npid);
	report("nobody_child_exit", nst == 0, "status=%d", nst);
	check_lock_state("nobody_flag_unchanged", 0);

	/* Unknown op / trigger. */
	errno = 0;
	long r = lockdown(99, MODULE_LOCKDOWN_TRIGGER_BOOT);
	report("einval_unknown_op", r == -1 && errno == EINVAL, "op=99: %ld %s", r,
	       errname(r ? errno : 0));
	errno = 0;
	r = lockdown(MODULE_LOCKDOWN_LOCK, 99);
	report("einval_unknown_trigger", r == -1 && errno == EINVAL, "LOCK trigger=99: %ld %s", r,
	       errname(r ? errno : 0));
	errno = 0;
	r = lockdown(MODULE_LOCKDOWN_LOCK, 0);
	report("einval_lock_without_trigger", r == -1 && errno == EINVAL, "LOCK trigger=0: %ld %s",
	       r, errname(r ? errno : 0));
	errno = 0;
	r = lockdown(MODULE_LOCKDOWN_QUERY, 99);
	report("einval_query_unknown_trigger", r == -1 && errno == EINVAL,
	       "QUERY trigger=99: %ld %s", r, errname(r ? errno : 0));
	check_lock_state("einval_flag_unchanged", 0);


	/*
	 * LOCK waits for the loads and unloads in flight.  Three are
	 * started on CPU 0 and caught in the middle: an unload whose exit sleeps,
	 * a load whose init sleeps, and a load whose init demand-loads another
	 * module after LOCK has set the flag (which must be refused at once, not
	 * deadlock).  A fourth child starts a load while LOCK waits: it must be
	 * refused without blocking.  LOCK runs on CPU 1.
	 */
	expect_finit("inflight_unload_target_loads", "/modules/signed/peinit_test_slow4.ko",
		     "delay_ms=1 exit_delay_ms=3000", 0);
	pid_t unloader = fork();
	if (unloader == 0) {
		pin_to_cpu(0);
		_exit(delete_module("peinit_test_slow4", O_NONBLOCK) == 0 ? 0 : errno);
	}
	pid_t loader = fork();
	if (loader == 0) {
		pin_to_cpu(0);
		int err = 0;
		finit_module_path("/modules/signed/peinit_test_slow5.ko", "delay_ms=3000", &err);
		_exit(err);
	}
	pid_t requester = fork();
	if (requester == 0) {
		pin_to_cpu(0);
		int err = 0;
		finit_module_path("/modules/signed/peinit_test_reqmod.ko",
				  "delay_ms=1500 request=net-pf-17", &err);
		_exit(err);
	}
	bool caught = kmsg_wait_line(10000, NULL, 0, "peinit_test_slow4: exit start", NULL, NULL,
				     NULL) &&
		      kmsg_wait_line(10000, NULL, 0, "peinit_test_slow5: init start", NULL, NULL,
				     NULL) &&
		      kmsg_wait_line(10000, NULL, 0, "peinit_test_reqmod: init start", NULL, NULL,
				     NULL);
	char st4[32], st5[32], str[32];
	module_initstate("peinit_test_slow4", st4, sizeof(st4));
	module_initstate("peinit_test_slow5", st5, sizeof(st5));
	module_initstate("peinit_test_reqmod", str, sizeof(str));
	report("inflight_caught", caught && !strcmp(st4, "going") && !strcmp(st5, "coming") &&
	       !strcmp(str, "coming"),
	       "before LOCK: slow4 %s (unloading), slow5 %s, reqmod %s (loading)", st4, st5, str);

	int late_pipe[2];
	if (pipe(late_pipe) != 0)
		late_pipe[0] = late_pipe[1] = -1;
	pid_t late = fork();
	if (late == 0) {
		pin_to_cpu(0);
		long long deadline = now_ms() + 10000;
		while (lockdown(MODULE_LOCKDOWN_QUERY, 0) != 1 && now_ms() < deadline)
			sleep_ms(5);
		long long t0 = now_ms();
		int err = 0;
		finit_module_path("/modules/signed/peinit_test_slow6.ko", "delay_ms=1", &err);
		long long res[3] = {err, t0, now_ms()};
		if (write(late_pipe[1], res, sizeof(res)) != sizeof(res))
			_exit(1);
		_exit(0);
	}
	close(late_pipe[1]);

	/* Root locks (on CPU 1, while the three are in flight). */
	pin_to_cpu(1);
	kmsg_note("locking now");
	long long lock_start = now_ms();
	errno = 0;
	r = lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_BOOT);
	long long lock_end = now_ms();
	report("root_lock", r == 0, "LOCK(boot-orchestrator-step)=%ld %s", r,
	       errname(r ? errno : 0));
	/* What the kernel says the moment LOCK has returned. */
	module_initstate("peinit_test_slow4", st4, sizeof(st4));
	module_initstate("peinit_test_slow5", st5, sizeof(st5));
	module_initstate("peinit_test_reqmod", str, sizeof(str));
	char *mods_at_lock = read_file("/proc/modules", NULL);
	report("inflight_lock_waited", lock_end - lock_start >= 1000,
	       "LOCK took %lld ms (the init still had over 2 s to sleep)", lock_end - lock_start);
	report("inflight_load_live", !strcmp(st5, "live") && module_loaded("peinit_test_slow5"),
	       "slow5 initstate=%s when LOCK returned", st5[0] ? st5 : "(absent)");
	report("inflight_unload_finished", st4[0] == '\0' && !module_loaded("peinit_test_slow4"),
	       "slow4 initstate=%s when LOCK returned", st4[0] ? st4 : "(absent)");
	report("inflight_demand_loading_init_live", !strcmp(str, "live"),
	       "reqmod initstate=%s when LOCK returned", str[0] ? str : "(absent)");
	report("inflight_nothing_half_done",
	       mods_at_lock && !strstr(mods_at_lock, " Loading ") && !strstr(mods_at_lock, " Unloading "),
	       "/proc/modules when LOCK returned has no Loading/Unloading module");
	report("inflight_request_module_refused",
	       kmsg_wait_line(0, line, sizeof(line), "peinit_test_reqmod: request_module(net-pf-17)=-1",
			      NULL, NULL, NULL) &&
	       count_lines(HELPER_LOG, "HELPER net-pf-17") == 0,
	       "%s; helper runs for net-pf-17: %d", line, count_lines(HELPER_LOG, "HELPER net-pf-17"));
	int ust = wait_child(unloader), lst = wait_child(loader), rst = wait_child(requester);
	report("inflight_calls_succeeded", ust == 0 && lst == 0 && rst == 0,
	       "delete_module(slow4)=%s finit(slow5)=%s finit(reqmod)=%s", errname(ust),
	       errname(lst), errname(rst));
	long long late_res[3] = {-1, 0, 0};
	ssize_t lr = read(late_pipe[0], late_res, sizeof(late_res));
	close(late_pipe[0]);
	int late_st = wait_child(late);
	report("inflight_new_load_refused_at_once",
	       late_st == 0 && lr == (ssize_t)sizeof(late_res) && late_res[0] == EPERM &&
	       late_res[2] < lock_end && late_res[2] - late_res[1] < 500,
	       "finit(slow6) started while LOCK waited: %s after %lld ms, %lld ms before LOCK returned",
	       errname((int)late_res[0]), late_res[2] - late_res[1], lock_end - late_res[2]);
	/* "locked by" is written once the operations in flight are done. */
	char *all = kmsg_snapshot();
	char *loaded_at = strstr(all, "peinit_test_slow5: loaded");
	char *locked_at = strstr(all, "module_lockdown: locked by ");
	report("inflight_lock_logged_after_them", loaded_at && locked_at && loaded_at < locked_at,
	       "slow5 loaded %s the lock line", loaded_at && locked_at && loaded_at < locked_at ?
	       "before" : "NOT before");
	free(all);
	sleep_ms(1000);
	char *mods_later = read_file("/proc/modules", NULL);
	report("inflight_nothing_later",
	       mods_at_lock && mods_later && !strcmp(mods_at_lock, mods_later) &&
	       !module_loaded("peinit_test_slow6"),
	       "/proc/modules 1 s after LOCK %s; slow6 loaded=%d",
	       mods_at_lock && mods_later && !strcmp(mods_at_lock, mods_later) ? "unchanged" : "CHANGED",
	       module_loaded("peinit_test_slow6"));
	free(mods_at_lock);
	free(mods_later);
	check_lock_state("locked_state", 1);
	snprintf(pidstr, sizeof(pidstr), "pid=%d ", (int)getpid());
	report("lock_logged",
	       kmsg_wait_line(2000, line, sizeof(line), "module_lockdown: locked by ", pidstr,
			      "trigger=boot-orchestrator-step", "exe=\"/init\""),
	       "%s", line);
	report("lock_audited",
	       kmsg_wait_line(3000, line, sizeof(line), AUDIT_KERNEL_OTHER_STR,
			      "op=module_lockdown action=lock trigger=boot-orchestrator-step result=locked",
			      pidstr, "res=1"),
	       "%s", line);

	/* The sysctl is read-only, even for root. */
	errno = 0;
	int wfd = open(MODULE_LOCKDOWN_SYSCTL_PATH, O_WRONLY | O_CLOEXEC);
	int werr = errno;
	ssize_t wn = -1;
	if (wfd >= 0) {
		wn = write(wfd, "0\n", 2);
		werr = errno;
		close(wfd);
	}
	report("sysctl_write_fails", (wfd < 0 || wn < 0) &&
	       read_long(MODULE_LOCKDOWN_SYSCTL_PATH) == 1,
	       "open=%d write=%zd errno=%s value=%ld", wfd, wn, errname(werr),
	       read_long(MODULE_LOCKDOWN_SYSCTL_PATH));

	/* Second LOCK: no-op returning 0. */
	errno = 0;
	r = lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	report("second_lock_noop", r == 0, "LOCK(runtime-syscall)=%ld %s", r,
	       errname(r ? errno : 0));
	check_lock_state("still_locked", 1);
	report("second_lock_logged",
	       kmsg_wait_line(2000, line, sizeof(line), "module_lockdown: already locked", pidstr,
			      "trigger=runtime-syscall", NULL),
	       "%s", line);

	/* After the lock: every module operation is EPERM, checked first. */
	expect_finit("locked_finit_module", "/modules/signed/peinit_test_slow2.ko", NULL, EPERM);
	report("locked_finit_not_loaded", !module_loaded("peinit_test_slow2"), "loaded=%d",
	       module_loaded("peinit_test_slow2"));
	size_t mlen = 0;
	char *mod = read_file("/modules/signed/peinit_test_slow3.ko", &mlen);
	errno = 0;
	r = mod ? syscall(SYS_init_module, mod, mlen, "") : -2;
	report("locked_init_module", r == -1 && errno == EPERM, "init_module=%ld %s", r,
	       errname(r == -1 ? errno : 0));
	free(mod);
	errno = 0;
	r = syscall(SYS_init_module, NULL, 0UL, NULL);
	report("locked_init_module_checked_first", r == -1 && errno == EPERM,
	       "init_module(NULL,0,NULL)=%ld %s", r, errname(r == -1 ? errno : 0));
	errno = 0;
	r = delete_module("peinit_test_consumer", O_NONBLOCK);
	int de = errno;
	errno = 0;
	long rf = delete_module("peinit_test_consumer", O_NONBLOCK | O_TRUNC);
	int dfe = errno;
	report("locked_delete_module", r == -1 && de == EPERM && module_loaded("peinit_test_consumer"),
	       "delete_module(consumer)=%ld %s", r, errname(de));
	report("locked_force_delete_same", rf == -1 && dfe == EPERM && module_loaded("peinit_test_consumer"),
	       "delete_module(consumer, O_TRUNC)=%ld %s", rf, errname(dfe));
	errno = 0;
	r = delete_module("no_such_module_xyz", 0);
	report("locked_delete_checked_first", r == -1 && errno == EPERM,
	       "delete_module(no_such_module)=%ld %s", r, errname(r == -1 ? errno : 0));

	/* After the lock: demand loads fail at once, the helper never runs. */
	int p0 = count_lines(HELPER_LOG, "HELPER ");
	errno = 0;
	int pfd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	int perr = errno;
	struct timespec ts = {0, 300 * 1000 * 1000};
	nanosleep(&ts, NULL);
	int p1 = count_lines(HELPER_LOG, "HELPER ");
	report("locked_af_packet_eafnosupport", pfd == -1 && perr == EAFNOSUPPORT,
	       "socket(AF_PACKET,SOCK_RAW)=%d %s", pfd, errname(pfd < 0 ? perr : 0));
	report("locked_helper_not_started", p1 == p0 && !module_loaded("af_packet"),
	       "helper runs %d->%d af_packet loaded=%d", p0, p1, module_loaded("af_packet"));
	if (pfd >= 0)
		close(pfd);
	check_lock_state("final_locked", 1);
}

static void run_enforce(void)
{
	char *v = read_file("/sys/module/module/parameters/sig_enforce", NULL);
	report("enforce_param_set", v && v[0] == 'Y', "sig_enforce=%s", v ? v : "(unreadable)");
	free(v);
	check_lock_state("enforce_initial_unlocked", 0);
	expect_finit("enforce_unsigned_rejected", "/modules/unsigned/peinit_test_param.ko", NULL,
		     EKEYREJECTED);
	expect_finit("enforce_tampered_rejected", "/modules/tampered/peinit_test_param.ko", NULL,
		     EKEYREJECTED);
	expect_finit("enforce_signed_loads", "/modules/signed/peinit_test_param.ko", NULL, 0);
	long taint = read_long("/proc/sys/kernel/tainted");
	report("enforce_not_tainted", taint >= 0 && !(taint & (1L << TAINT_UNSIGNED_MODULE_BIT)),
	       "tainted=%ld (unsigned-module bit %d must be clear)", taint,
	       TAINT_UNSIGNED_MODULE_BIT);

	/* Unlocked: the AF_PACKET demand load goes through the helper and works
	 * (the counterpart of locked_af_packet_eafnosupport in the main boot). */
	int h0 = count_lines(HELPER_LOG, "HELPER net-pf-17");
	errno = 0;
	int pfd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	int perr = errno;
	int h1 = count_lines(HELPER_LOG, "HELPER net-pf-17");
	report("unlocked_af_packet_demand_load",
	       pfd >= 0 && h1 == h0 + 1 && module_loaded("af_packet"),
	       "socket(AF_PACKET)=%d %s helper runs %d->%d af_packet loaded=%d", pfd,
	       errname(pfd < 0 ? perr : 0), h0, h1, module_loaded("af_packet"));
	if (pfd >= 0)
		close(pfd);
}


/* ---- probe_mode=autoload: DISABLE_AUTOLOAD, SEAL_MODPROBE, refusal records -- */

#define INJECT_EXE "/x result=locked trigger=registry"
#define INJECT_COMM "a result=locked" /* 15 bytes: the whole of TASK_COMM_LEN */
#define FLOOD 100

static void check_new_op_state(const char *name, long want_autoload, long want_sealed)
{
	long qa = lockdown(MODULE_LOCKDOWN_QUERY_AUTOLOAD, 0);
	long qm = lockdown(MODULE_LOCKDOWN_QUERY_MODPROBE, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	long sa = read_long(MODULE_LOCKDOWN_AUTOLOAD_SYSCTL_PATH);
	long sm = read_long(MODULE_LOCKDOWN_MODPROBE_SYSCTL_PATH);
	long ql = lockdown(MODULE_LOCKDOWN_QUERY, 0);
	report(name, qa == want_autoload && sa == want_autoload && qm == want_sealed &&
	       sm == want_sealed && ql == 0,
	       "QUERY_AUTOLOAD=%ld sysctl=%ld (want %ld) QUERY_MODPROBE=%ld sysctl=%ld (want %ld) "
	       "QUERY=%ld (want 0)", qa, sa, want_autoload, qm, sm, want_sealed, ql);
}

static void child_nobody_new_ops(void)
{
	if (become_nobody() != 0) {
		report("nobody_new_ops_setuid", false, "%s", strerror(errno));
		_exit(1);
	}
	errno = 0;
	long rd = lockdown(MODULE_LOCKDOWN_DISABLE_AUTOLOAD, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	int ed = errno;
	report("nobody_disable_autoload_eperm", rd == -1 && ed == EPERM,
	       "DISABLE_AUTOLOAD=%ld errno=%s", rd, errname(ed));
	errno = 0;
	long rs = lockdown(MODULE_LOCKDOWN_SEAL_MODPROBE, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	int es = errno;
	report("nobody_seal_modprobe_eperm", rs == -1 && es == EPERM, "SEAL_MODPROBE=%ld errno=%s",
	       rs, errname(es));
	/* Both states are readable without privilege. */
	check_new_op_state("nobody_reads_new_states", 0, 0);
	_exit(0);
}

/* Run as INJECT_EXE: an unprivileged caller whose comm and exe hold " key=value" text. */
static int inject_child(void)
{
	if (become_nobody() != 0 || prctl(PR_SET_NAME, INJECT_COMM, 0, 0, 0) != 0)
		return 2;
	errno = 0;
	long r = lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	return r == -1 && errno == EPERM ? 0 : 1;
}

static void child_flood(void)
{
	if (become_nobody() != 0)
		_exit(2);
	int refused = 0;
	for (int i = 0; i < FLOOD; i++)
		if (lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME) == -1 &&
		    errno == EPERM)
			refused++;
	/* After the rate limit's interval (5 s) the next refusal is kept and carries the count. */
	sleep_ms(5500);
	if (lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME) == -1 && errno == EPERM)
		refused++;
	_exit(refused == FLOOD + 1 ? 0 : 1);
}

/* Counts the kernel-log lines holding both needles and sums their suppressed= fields. */
static int count_refusals(const char *n1, const char *n2, long *suppressed_sum, long *last)
{
	char *all = kmsg_snapshot();
	int n = 0;
	*suppressed_sum = 0;
	*last = -1;
	for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strstr(line, n1) || !strstr(line, n2))
			continue;
		n++;
		char *sp = strstr(line, " suppressed=");
		*last = sp ? strtol(sp + 12, NULL, 10) : -1;
		if (sp)
			*suppressed_sum += *last;
	}
	free(all);
	return n;
}

/*
 * Per-uid rate limit of refusal records (kernel patch 0006).  A refusal's
 * kernel-log line names the caller as "for pid=P uid=U ".
 */
#define RS_SLOTS 64	/* MODULE_LOCKDOWN_RS_SLOTS */
#define RS_BURST 5	/* MODULE_LOCKDOWN_RS_BURST */
#define UID_A 2001
#define UID_B 2002
#define UID_FILL 3000	/* 3000 .. 3000 + RS_SLOTS - 1 */
#define UID_OVER 4000
#define FLOOD_A 50
#define ROOT_REFUSALS 20
#define OVER_REFUSALS 8

/* Refusals of LOCK as `uid` (no capabilities), `n` times; exits 0 when all were EPERM. */
static void refuse_as(uid_t uid, int n)
{
	if (setgroups(0, NULL) != 0 || setgid(uid) != 0 || setuid(uid) != 0)
		_exit(2);
	int refused = 0;
	for (int i = 0; i < n; i++)
		if (lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME) == -1 &&
		    errno == EPERM)
			refused++;
	_exit(refused == n ? 0 : 1);
}

static pid_t fork_refusals(uid_t uid, int n)
{
	pid_t pid = fork();
	if (pid == 0)
		refuse_as(uid, n);
	return pid;
}

/* Kernel-log lines "module_lockdown: lock refused ... <n2> ... <n3>"; the sum of their suppressed=. */
static int count_refusal_lines(const char *n2, const char *n3, long *suppressed_sum)
{
	char *all = kmsg_snapshot();
	int n = 0;
	*suppressed_sum = 0;
	for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strstr(line, "module_lockdown: lock refused") || !strstr(line, n2) ||
		    (n3 && !strstr(line, n3)))
			continue;
		n++;
		char *sp = strstr(line, " suppressed=");
		if (sp)
			*suppressed_sum += strtol(sp + 12, NULL, 10);
	}
	free(all);
	return n;
}

/*
 * One child refuses as uid 0 without capabilities, as many uids UID_FILL.. in
 * turn (setresuid back and forth through the saved uid 0), then as UID_OVER;
 * then UID_FILL once more.  Exits 0 when every call was EPERM.
 */
static void child_fill_table(void)
{
	int bad = 0;
	if (setgroups(0, NULL) != 0)
		_exit(2);
	for (uid_t u = UID_FILL; u < UID_FILL + RS_SLOTS; u++) {
		if (setresuid(u, u, 0) != 0)
			_exit(3);
		if (!(lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME) == -1 &&
		      errno == EPERM))
			bad++;
		if (setresuid(0, 0, 0) != 0)
			_exit(4);
	}
	if (setresuid(UID_OVER, UID_OVER, 0) != 0)
		_exit(5);
	for (int i = 0; i < OVER_REFUSALS; i++)
		if (!(lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME) == -1 &&
		      errno == EPERM))
			bad++;
	if (setresuid(0, 0, 0) != 0 || setresuid(UID_FILL, UID_FILL, 0) != 0)
		_exit(6);
	if (!(lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME) == -1 && errno == EPERM))
		bad++;
	_exit(bad ? 1 : 0);
}

static void child_root_without_caps(void)
{
	if (drop_caps_except(0) != 0)
		_exit(2);
	int refused = 0;
	for (int i = 0; i < ROOT_REFUSALS; i++)
		if (lockdown(MODULE_LOCKDOWN_LOCK, MODULE_LOCKDOWN_TRIGGER_RUNTIME) == -1 &&
		    errno == EPERM)
			refused++;
	_exit(refused == ROOT_REFUSALS ? 0 : 1);
}

static void run_per_uid_rate_limit(void)
{
	char line[1024], want[96], pidstr[32];
	long sum = 0;

	/* uid A floods; right after, uid B's first refusal is still recorded, with nothing suppressed. */
	pid_t apid = fork_refusals(UID_A, FLOOD_A);
	int ast = wait_child(apid);
	pid_t bpid = fork_refusals(UID_B, 1);
	int bst = wait_child(bpid);
	report("peruid_children_refused", ast == 0 && bst == 0, "uid %d: status=%d, uid %d: status=%d",
	       UID_A, ast, UID_B, bst);
	sleep_ms(200);
	snprintf(want, sizeof(want), "pid=%d uid=%d ", (int)apid, UID_A);
	int na = count_refusal_lines(want, NULL, &sum);
	report("peruid_flood_limited", na == RS_BURST,
	       "%d kernel-log records for %d refusals of uid %d (want %d)", na, FLOOD_A, UID_A, RS_BURST);
	snprintf(want, sizeof(want), "pid=%d uid=%d ", (int)bpid, UID_B);
	report("peruid_other_uid_recorded",
	       kmsg_wait_line(2000, line, sizeof(line), "module_lockdown: lock refused", want,
			      "result=denied suppressed=0", NULL),
	       "uid %d after uid %d's flood: %s", UID_B, UID_A, line);

	/* Root without SeTcb: every refusal recorded, none suppressed. */
	pid_t rpid = run_child(child_root_without_caps);
	int rst = wait_child(rpid);
	sleep_ms(200);
	snprintf(pidstr, sizeof(pidstr), "pid=%d uid=0 ", (int)rpid);
	int nr = count_refusal_lines(pidstr, "suppressed=0", &sum);
	long all_sum = 0;
	int nr_all = count_refusal_lines(pidstr, NULL, &all_sum);
	report("peruid_root_never_limited", rst == 0 && nr == ROOT_REFUSALS && nr_all == ROOT_REFUSALS,
	       "status=%d; %d records with suppressed=0 (%d in all) for %d refusals by uid 0 without "
	       "capabilities", rst, nr, nr_all, ROOT_REFUSALS);

	/*
	 * The table: after the interval every entry is expired.  RS_SLOTS uids fill it
	 * (uid A's entry, the one with a count pending, is taken last and its count
	 * reported in a line of its own); one more uid then shares the overflow
	 * bucket (bounded to RS_BURST records); an entry inside its interval keeps
	 * recording for its uid.
	 */
	sleep_ms(5500);
	pid_t fpid = run_child(child_fill_table);
	int fst = wait_child(fpid);
	report("peruid_fill_child_refused", fst == 0, "status=%d", fst);
	sleep_ms(200);
	snprintf(want, sizeof(want), "refusals by uid=%d not recorded: suppressed=%d ", UID_A,
		 FLOOD_A - RS_BURST);
	report("peruid_reused_entry_reports_count",
	       kmsg_wait_line(2000, line, sizeof(line), "module_lockdown: ", want,
			      "(its rate-limit entry was reused)", NULL),
	       "%s", line);
	snprintf(pidstr, sizeof(pidstr), "pid=%d ", (int)fpid);
	int filled = 0;
	for (uid_t u = UID_FILL; u < UID_FILL + RS_SLOTS; u++) {
		snprintf(want, sizeof(want), " uid=%d ", (int)u);
		filled += count_refusal_lines(pidstr, want, &sum) >= 1;
	}
	snprintf(want, sizeof(want), " uid=%d ", UID_OVER);
	int nover = count_refusal_lines(pidstr, want, &sum);
	report("peruid_table_full_overflow_bounded", filled == RS_SLOTS && nover == RS_BURST,
	       "%d of %d uids recorded; uid %d (table full): %d records for %d refusals (want %d)",
	       filled, RS_SLOTS, UID_OVER, nover, OVER_REFUSALS, RS_BURST);
	snprintf(want, sizeof(want), " uid=%d ", UID_FILL);
	int nfill = count_refusal_lines(pidstr, want, &sum);
	report("peruid_entry_kept_for_its_uid", nfill == 2 && sum == 0,
	       "uid %d: %d records (want 2: before and after the overflow), suppressed sum %ld",
	       UID_FILL, nfill, sum);
}

static void run_autoload(void)
{
	char line[1024], pidstr[32];
	struct stat st;

	check_new_op_state("new_ops_initially_unset", 0, 0);
	bool ma = stat(MODULE_LOCKDOWN_AUTOLOAD_SYSCTL_PATH, &st) == 0 && (st.st_mode & 07777) == 0444;
	bool mm = stat(MODULE_LOCKDOWN_MODPROBE_SYSCTL_PATH, &st) == 0 && (st.st_mode & 07777) == 0444;
	report("new_sysctls_mode_0444", ma && mm, "module_autoload_disabled %s, modprobe_sealed %s",
	       ma ? "0444" : "NOT 0444", mm ? "0444" : "NOT 0444");

	/* Before: a demand load runs the helper. */
	int h0 = count_lines(HELPER_LOG, "HELPER net-pf-17");
	int pfd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	int perr = errno;
	report("autoload_enabled_demand_load", pfd >= 0 &&
	       count_lines(HELPER_LOG, "HELPER net-pf-17") == h0 + 1 && module_loaded("af_packet"),
	       "socket(AF_PACKET)=%d %s af_packet loaded=%d", pfd, errname(pfd < 0 ? perr : 0),
	       module_loaded("af_packet"));
	if (pfd >= 0)
		close(pfd);

	/* Unprivileged: refused, audited, flags unchanged. */
	pid_t npid = run_child(child_nobody_new_ops);
	int nst = wait_child(npid);
	report("nobody_new_ops_child_exit", nst == 0, "status=%d", nst);
	check_new_op_state("nobody_new_ops_flags_unchanged", 0, 0);
	snprintf(pidstr, sizeof(pidstr), "pid=%d ", (int)npid);
	report("disable_autoload_refusal_logged",
	       kmsg_wait_line(2000, line, sizeof(line),
			      "module_lockdown: disable-autoload refused (EPERM: needs CAP_SYS_ADMIN) for ",
			      pidstr, "result=denied suppressed=0", NULL),
	       "%s", line);
	report("seal_modprobe_refusal_audited",
	       kmsg_wait_line(3000, line, sizeof(line), AUDIT_KERNEL_OTHER_STR,
			      "op=module_lockdown action=seal-modprobe trigger=runtime-syscall result=denied",
			      pidstr, "res=0"),
	       "%s", line);

	/* Argument errors: EINVAL, nothing set. */
	errno = 0;
	long r1 = lockdown(MODULE_LOCKDOWN_DISABLE_AUTOLOAD, 0);
	int e1 = errno;
	errno = 0;
	long r2 = lockdown(MODULE_LOCKDOWN_SEAL_MODPROBE, 99);
	int e2 = errno;
	errno = 0;
	long r3 = lockdown(MODULE_LOCKDOWN_QUERY_AUTOLOAD, 99);
	int e3 = errno;
	errno = 0;
	long r4 = lockdown(6, MODULE_LOCKDOWN_TRIGGER_BOOT);
	int e4 = errno;
	report("new_ops_einval", r1 == -1 && e1 == EINVAL && r2 == -1 && e2 == EINVAL &&
	       r3 == -1 && e3 == EINVAL && r4 == -1 && e4 == EINVAL,
	       "DISABLE_AUTOLOAD(0)=%s SEAL_MODPROBE(99)=%s QUERY_AUTOLOAD(99)=%s op 6=%s",
	       errname(e1), errname(e2), errname(e3), errname(e4));
	check_new_op_state("new_ops_einval_flags_unchanged", 0, 0);

	/* Root disables demand loading: one-way, logged and audited. */
	snprintf(pidstr, sizeof(pidstr), "pid=%d ", (int)getpid());
	errno = 0;
	long r = lockdown(MODULE_LOCKDOWN_DISABLE_AUTOLOAD, MODULE_LOCKDOWN_TRIGGER_BOOT);
	report("root_disable_autoload", r == 0, "DISABLE_AUTOLOAD=%ld %s", r, errname(r ? errno : 0));
	check_new_op_state("autoload_disabled_state", 1, 0);
	report("disable_autoload_logged",
	       kmsg_wait_line(2000, line, sizeof(line), "module_lockdown: autoload disabled by ", pidstr,
			      "exe=\"/init\"", "trigger=boot-orchestrator-step result=autoload-disabled"),
	       "%s", line);
	report("disable_autoload_audited",
	       kmsg_wait_line(3000, line, sizeof(line), AUDIT_KERNEL_OTHER_STR,
			      "op=module_lockdown action=disable-autoload trigger=boot-orchestrator-step "
			      "result=autoload-disabled", pidstr, "res=1"),
	       "%s", line);

	/* Root may still rewrite kernel.modprobe (not sealed yet), and it does not matter. */
	int mfd = open("/proc/sys/kernel/modprobe", O_WRONLY | O_CLOEXEC);
	bool wrote = mfd >= 0 && write(mfd, "/sbin/test-modprobe\n", 20) == 20;
	if (mfd >= 0)
		close(mfd);
	int a0 = count_lines(HELPER_LOG, "HELPER ");
	long long t0 = now_ms();
	errno = 0;
	int afd = socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int aerr = errno;
	long long took = now_ms() - t0;
	sleep_ms(300);
	int a1 = count_lines(HELPER_LOG, "HELPER ");
	report("disabled_demand_load_fails_at_once",
	       wrote && afd == -1 && aerr == EAFNOSUPPORT && a1 == a0 && !module_loaded("af_alg"),
	       "kernel.modprobe rewritten by root=%d; socket(AF_ALG)=%d %s in %lld ms; helper runs "
	       "%d->%d; af_alg loaded=%d", wrote, afd, errname(afd < 0 ? aerr : 0), took, a0, a1,
	       module_loaded("af_alg"));
	if (afd >= 0)
		close(afd);
	expect_finit("disabled_explicit_load_works", "/modules/signed/peinit_test_slow2.ko",
		     "delay_ms=1", 0);
	errno = 0;
	r = lockdown(MODULE_LOCKDOWN_DISABLE_AUTOLOAD, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	report("second_disable_autoload_noop", r == 0 &&
	       kmsg_wait_line(2000, line, sizeof(line),
			      "module_lockdown: autoload already disabled, no-op for ", pidstr,
			      "result=already-disabled", NULL),
	       "DISABLE_AUTOLOAD=%ld: %s", r, line);

	/* Root seals kernel.modprobe: nobody, root included, can change it any more. */
	errno = 0;
	r = lockdown(MODULE_LOCKDOWN_SEAL_MODPROBE, MODULE_LOCKDOWN_TRIGGER_REGISTRY);
	report("root_seal_modprobe", r == 0, "SEAL_MODPROBE=%ld %s", r, errname(r ? errno : 0));
	check_new_op_state("modprobe_sealed_state", 1, 1);
	report("seal_modprobe_logged",
	       kmsg_wait_line(2000, line, sizeof(line), "module_lockdown: kernel.modprobe sealed by ",
			      pidstr, "trigger=registry", "result=modprobe-sealed"),
	       "%s", line);
	report("seal_modprobe_audited",
	       kmsg_wait_line(3000, line, sizeof(line), AUDIT_KERNEL_OTHER_STR,
			      "op=module_lockdown action=seal-modprobe trigger=registry "
			      "result=modprobe-sealed", pidstr, "res=1"),
	       "%s", line);
	errno = 0;
	mfd = open("/proc/sys/kernel/modprobe", O_WRONLY | O_CLOEXEC);
	int oerr = errno;
	ssize_t wn = -1;
	int werr = 0;
	if (mfd >= 0) {
		errno = 0;
		wn = write(mfd, "/tmp/evil\n", 10);
		werr = errno;
		close(mfd);
	}
	report("sealed_modprobe_write_eperm",
	       mfd >= 0 && wn == -1 && werr == EPERM &&
	       file_contains("/proc/sys/kernel/modprobe", "/sbin/test-modprobe"),
	       "open=%s write=%zd %s; kernel.modprobe still /sbin/test-modprobe=%d",
	       mfd >= 0 ? "ok" : errname(oerr), wn, errname(werr),
	       file_contains("/proc/sys/kernel/modprobe", "/sbin/test-modprobe"));
	errno = 0;
	r = lockdown(MODULE_LOCKDOWN_SEAL_MODPROBE, MODULE_LOCKDOWN_TRIGGER_RUNTIME);
	report("second_seal_noop", r == 0 &&
	       kmsg_wait_line(2000, line, sizeof(line),
			      "module_lockdown: kernel.modprobe already sealed, no-op for ", pidstr,
			      "result=already-sealed", NULL),
	       "SEAL_MODPROBE=%ld: %s", r, line);
	check_new_op_state("new_ops_final_state", 1, 1);

	/* A caller cannot inject " key=value" text through its comm or exe. */
	bool linked = link("/init", INJECT_EXE) == 0;
	pid_t ipid = fork();
	if (ipid == 0) {
		char *argv[] = {(char *)INJECT_EXE, (char *)"inject-child", NULL};
		execv(INJECT_EXE, argv);
		_exit(3);
	}
	int ist = wait_child(ipid);
	report("inject_child_refused", linked && ist == 0, "link=%d status=%d", linked, ist);
	char comm_enc[64], exe_enc[128], want[300];
	audit_encode(INJECT_COMM, comm_enc, sizeof(comm_enc));
	audit_encode(INJECT_EXE, exe_enc, sizeof(exe_enc));
	snprintf(pidstr, sizeof(pidstr), "pid=%d ", (int)ipid);
	snprintf(want, sizeof(want), " comm=%s exe=%s cap_eff=0000000000000000 ", comm_enc, exe_enc);
	bool found = kmsg_wait_line(2000, line, sizeof(line), "module_lockdown: lock refused", pidstr,
				    NULL, NULL);
	size_t ll = strlen(line);
	const char *tail = " trigger=runtime-syscall result=denied suppressed=0";
	report("inject_log_encoded",
	       found && strstr(line, want) && ll > strlen(tail) &&
	       !strcmp(line + ll - strlen(tail), tail) && !strstr(line, "comm=a result") &&
	       !strstr(line, "trigger=registry"),
	       "%s", line);
	snprintf(want, sizeof(want), "comm=%s exe=%s", comm_enc, exe_enc);
	report("inject_audit_encoded",
	       kmsg_wait_line(3000, line, sizeof(line), AUDIT_KERNEL_OTHER_STR,
			      "action=lock trigger=runtime-syscall result=denied", pidstr, want),
	       "%s", line);

	/*
	 * A flood of refusals: after a quiet interval, the first few of the burst
	 * are kept, the rest only counted, and the next kept record carries the
	 * count.
	 */
	sleep_ms(5500);
	pid_t fpid = run_child(child_flood);
	int fst = wait_child(fpid);
	report("flood_child_refused", fst == 0, "status=%d (%d refusals expected)", fst, FLOOD + 1);
	snprintf(pidstr, sizeof(pidstr), "pid=%d ", (int)fpid);
	long sum = 0, last = -1;
	sleep_ms(200);
	int n = count_refusals("module_lockdown: lock refused", pidstr, &sum, &last);
	report("flood_log_rate_limited", n >= 2 && n <= 6 && n + sum == FLOOD + 1 && last > 0,
	       "%d kernel-log records for %d refusals, suppressed counts sum to %ld, last "
	       "suppressed=%ld", n, FLOOD + 1, sum, last);
	kmsg_wait_line(3000, NULL, 0, AUDIT_KERNEL_OTHER_STR, pidstr, "suppressed=", NULL);
	long asum = 0, alast = -1;
	int an = count_refusals(AUDIT_KERNEL_OTHER_STR " ", pidstr, &asum, &alast);
	report("flood_audit_rate_limited", an >= 1 && an <= 6 && alast == last,
	       "%d audit records for %d refusals, the last with suppressed=%ld", an, FLOOD + 1,
	       alast);

	run_per_uid_rate_limit();
}

static void setup(void)
{
	mkdir("/proc", 0555);
	mkdir("/sys", 0555);
	mkdir("/dev", 0755);
	mount("proc", "/proc", "proc", 0, NULL);
	mount("sysfs", "/sys", "sysfs", 0, NULL);
	mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
	int fd = open("/dev/console", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	/* The PROBE lines go to the results channel (channel.h); kernel messages stay off the
	 * console anyway (they are in /dev/kmsg, which is dumped at the end). */
	channel_stdout();
	klogctl(8 /* SYSLOG_ACTION_CONSOLE_LEVEL */, NULL, 1);
	int mfd = open("/proc/sys/kernel/modprobe", O_WRONLY);
	bool ok = mfd >= 0 && write(mfd, "/sbin/test-modprobe\n", 20) == 20;
	if (mfd >= 0)
		close(mfd);
	report("setup_modprobe_helper", ok && file_contains("/proc/sys/kernel/modprobe",
							      "/sbin/test-modprobe"),
	       "kernel.modprobe=/sbin/test-modprobe");
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "inject-child"))
		return inject_child();
	setup();
	char *cmdline = read_file("/proc/cmdline", NULL);
	bool enforce = cmdline && strstr(cmdline, "probe_mode=enforce");
	bool autoload = cmdline && strstr(cmdline, "probe_mode=autoload");
	out_line(enforce ? "PROBE-MODE enforce\n" : autoload ? "PROBE-MODE autoload\n"
							      : "PROBE-MODE main\n");
	if (enforce)
		run_enforce();
	else if (autoload)
		run_autoload();
	else
		run_main();
	free(cmdline);

	/* Dump the kernel log for the test's diagnostics. */
	char *all = kmsg_snapshot();
	for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
		char buf[1100];
		snprintf(buf, sizeof(buf), "KMSG %s\n", line);
		out_line(buf);
	}
	free(all);
	char end[64];
	snprintf(end, sizeof(end), "PROBE-END failures=%d\n", failures);
	out_line(end);
	tcdrain(STDOUT_FILENO);
	sync();
	reboot(RB_POWER_OFF);
	/* Not reached unless power-off failed; PID 1 must not exit. */
	out_line("PROBE-POWEROFF-FAILED\n");
	for (;;)
		pause();
}
