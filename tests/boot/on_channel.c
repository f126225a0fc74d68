/* on_channel: runs a program with its stdout on the boot tests' results channel (channel.h),
 * optionally as another user:
 *     on_channel [--uid N] PROGRAM [ARGS...]
 * For services that print their results from a shell (e.g. peinitctl's output between markers).
 * The unit runs it as root, which may open the channel (a root-owned 0600 device node); with
 * --uid it then drops to N (no supplementary groups, gid N, uid N: no capability is left) and
 * execs PROGRAM, which keeps the channel as its stdout. Exit status 127 when it cannot. */
#define _GNU_SOURCE
#include <grp.h>
#include <stdlib.h>

#include "channel.h"

int main(int argc, char **argv)
{
	int i = 1;
	long uid = -1;
	if (i + 1 < argc && strcmp(argv[i], "--uid") == 0) {
		char *end;
		uid = strtol(argv[i + 1], &end, 10);
		if (*end != '\0' || uid < 0) {
			fprintf(stderr, "on_channel: bad --uid %s\n", argv[i + 1]);
			return 127;
		}
		i += 2;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: on_channel [--uid N] PROGRAM [ARGS...]\n");
		return 127;
	}
	if (channel_stdout() != 0)
		return 127;
	if (uid >= 0 && (setgroups(0, NULL) != 0 || setgid((gid_t)uid) != 0 ||
			 setuid((uid_t)uid) != 0)) {
		fprintf(stderr, "on_channel: cannot become uid %ld: %s\n", uid, strerror(errno));
		return 127;
	}
	execv(argv[i], argv + i);
	fprintf(stderr, "on_channel: %s: %s\n", argv[i], strerror(errno));
	return 127;
}
