/* preload_marker: a shared object that records every process that maps it, by appending the
 * process's name to /run/preload-marker. The sealed-tree boot test (LockdownBoot.SealedTree)
 * names it in the writable root's /etc/ld.so.preload, as a root service without SeLoadDriver
 * could, and checks that the demand-load helper the kernel runs does not map it (its loader
 * and libraries come from the read-only tree), while an ordinary dynamic program does (the
 * control: the marker works). */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void mark(void) {
    char comm[64] = "?";
    int in = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (in >= 0) {
        ssize_t n = read(in, comm, sizeof comm - 1);
        comm[n > 0 ? n : 0] = '\0';
        close(in);
    }
    int out = open("/run/preload-marker", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) return;
    (void)!write(out, comm, strlen(comm));
    close(out);
}
