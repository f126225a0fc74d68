// peinit-modprobe: the program kernel.modprobe names when peinit's helper enforces the demand-load
// policy (peinit/core/sealed_tree.h). The kernel runs it for request_module() as root with every
// capability, so nothing it executes or maps may come from a file a root process without
// SeLoadDriver can write. It is a static executable on the sealed (read-only) tree: no program
// interpreter, no shared library, and it reads nothing but its own arguments. It
//   1. keeps a descriptor of the real root (O_PATH, inherited by the helper),
//   2. chroots into the sealed tree, so that the helper's loader, its libraries, and the files
//      the loader reads unconditionally (/etc/ld.so.preload, /etc/ld.so.cache) are the tree's,
//   3. executes the tree's peinit as `peinit-modprobe ARGS...` with a fixed environment.
// The helper returns to the real root through the descriptor once it is loaded
// (peinit/helper/helper.h). Any failure: exit status 1 and one line in the kernel log; the
// demand load fails (closed).

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>

#include "peinit/core/sealed_tree.h"

namespace {

void Report(int kmsg, const char* what, int err) {
    if (kmsg < 0) return;
    char line[256];
    int n = snprintf(line, sizeof line, "<3>peinit-modprobe: %s %s: %s\n", what, peinit::kSealedRoot,
                     strerror(err));
    if (n > 0) (void)!write(kmsg, line, static_cast<size_t>(n) < sizeof line ? n : sizeof line - 1);
}

}  // namespace

int main(int argc, char** argv) {
    // The kernel may start us without descriptors 0-2: occupy them, so that the root
    // descriptor is not mistaken for stdout by anything later.
    for (int fd = 0; fd < 3; ++fd) {
        if (fcntl(fd, F_GETFD) >= 0) continue;
        int n = open("/dev/null", O_RDWR | O_NOCTTY);
        if (n >= 0 && n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
    int kmsg = open("/dev/kmsg", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    int root = open("/", O_PATH | O_DIRECTORY);  // deliberately not close-on-exec
    if (root < 0) {
        Report(kmsg, "cannot open / before entering", errno);
        return 1;
    }
    if (chdir(peinit::kSealedRoot) != 0 || chroot(".") != 0 || chdir("/") != 0) {
        Report(kmsg, "cannot enter", errno);
        return 1;
    }
    char fd_variable[64];
    snprintf(fd_variable, sizeof fd_variable, "%s=%d", peinit::kRealRootFdVariable, root);
    char library_path[64];
    snprintf(library_path, sizeof library_path, "LD_LIBRARY_PATH=%s", peinit::kSealedLibDirInTree);
    // No LD_BIND_NOW: binding a symbol later only looks among the objects already mapped, it
    // opens no file; the loader maps every library before the helper's main() runs.
    char path[] = "PATH=/bin";
    char* env[] = {path, library_path, fd_variable, nullptr};

    // The kernel passes `-q -- ALIAS`; anything much longer is not a demand load.
    constexpr int kMaxArgs = 32;
    if (argc > kMaxArgs) {
        Report(kmsg, "too many arguments, refusing to enter", E2BIG);
        return 2;
    }
    char name[] = "peinit-modprobe";
    char* args[kMaxArgs + 1];
    int n = 0;
    args[n++] = name;
    for (int i = 1; i < argc; ++i) args[n++] = argv[i];
    args[n] = nullptr;
    execve(peinit::kSealedPeinitInTree, args, env);
    Report(kmsg, "cannot execute the helper in", errno);
    return 1;
}
