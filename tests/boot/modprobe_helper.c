/*
 * modprobe_helper: a tiny stand-in for /sbin/modprobe used by the kernel
 * boot tests as kernel.modprobe.  The kernel runs it as
 * "<path> -q -- <module-name>" for every demand load (request_module).
 *
 * It records each run (a "HELPER <name>" line appended to /helper.log and a
 * kernel log line), then loads /helper-modules/<name>.ko if present.
 * Static binary; no libkmod.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *name = argc > 0 ? argv[argc - 1] : "?";
	char path[512];
	int fd = open("/helper.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dprintf(fd, "HELPER %s\n", name);
		close(fd);
	}
	snprintf(path, sizeof(path), "/helper-modules/%s.ko", name);
	int mfd = open(path, O_RDONLY | O_CLOEXEC);
	long rc = -1;
	int err = ENOENT;
	if (mfd >= 0) {
		rc = syscall(SYS_finit_module, mfd, "", 0);
		err = rc == 0 ? 0 : errno;
		close(mfd);
	}
	int kfd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (kfd >= 0) {
		dprintf(kfd, "<5>peinit-test-modprobe: request %s: %s\n", name,
			rc == 0 ? "loaded" : strerror(err));
		close(kfd);
	}
	return rc == 0 || err == EEXIST ? 0 : 1;
}
