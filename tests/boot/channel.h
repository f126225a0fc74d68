/* The guest side of the boot tests' results channel (qemu_runner.h): the third serial port,
 * /dev/ttyS2, backed by a file on the host. Neither the kernel nor PID 1 writes to it, so a
 * probe's lines arrive whole and in order, whatever the kernel prints on the console meanwhile.
 *
 * A probe calls channel_stdout() first thing: from then on its stdout (printf) goes to the
 * channel, line-buffered; its stderr stays on the console for humans. channel_flush() before
 * powering off or exiting: the port's buffer is drained, so the host has every byte. */
#ifndef PEINIT_TEST_CHANNEL_H
#define PEINIT_TEST_CHANNEL_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

#define CHANNEL_DEVICE "/dev/ttyS2"

/* Makes the results channel the process's stdout; creates its node (char 4:66) when /dev has
 * none yet. On failure says why on stderr and leaves stdout as it was: the host test then finds
 * no results and shows the console with this line. */
static inline int channel_stdout(void)
{
	int fd = open(CHANNEL_DEVICE, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && mknod(CHANNEL_DEVICE, S_IFCHR | 0600, makedev(4, 66)) == 0)
		fd = open(CHANNEL_DEVICE, O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "channel: cannot open %s: %s\n", CHANNEL_DEVICE, strerror(errno));
		return -1;
	}
	struct termios t;
	if (tcgetattr(fd, &t) == 0) {
		t.c_oflag &= ~(tcflag_t)OPOST; /* bytes as written: no \r added */
		cfsetospeed(&t, B115200);
		tcsetattr(fd, TCSANOW, &t);
	}
	fflush(stdout);
	if (dup2(fd, STDOUT_FILENO) < 0) {
		fprintf(stderr, "channel: dup2: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	setvbuf(stdout, NULL, _IOLBF, 0);
	return 0;
}

/* Everything written so far is out of the port. */
static inline void channel_flush(void)
{
	fflush(stdout);
	tcdrain(STDOUT_FILENO);
}

#endif
