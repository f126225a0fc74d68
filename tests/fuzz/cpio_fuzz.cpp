// libFuzzer target: the image builder's archive reader, ReadCpio (initramfs/image_tree.h), which
// `peinit-image list FILE` runs on any file it is given. ReadCpio reads by path, so each input
// is written to one memfd and read through /proc/self/fd/N: the production code path unchanged.
//
// Checks: an error names the file; a listed regular file carries exactly its size in data.

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "initramfs/image_tree.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

int Memfd() {
    static const int fd = [] {
        int f = memfd_create("cpio_fuzz", MFD_CLOEXEC);
        if (f < 0) {
            std::perror("memfd_create");
            std::exit(1);
        }
        return f;
    }();
    return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    int fd = Memfd();
    if (ftruncate(fd, 0) != 0) std::abort();
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fd, data + done, size - done, static_cast<off_t>(done));
        if (n <= 0) std::abort();
        done += static_cast<size_t>(n);
    }
    const std::string path = "/proc/self/fd/" + std::to_string(fd);

    auto entries = peinit::image::ReadCpio(path);
    if (!entries) {
        FUZZ_CHECK(entries.error().message().rfind(path, 0) == 0,
                   "error does not name the file: " + entries.error().message());
        return 0;
    }
    for (const auto& e : *entries) {
        if (e.type == peinit::image::EntryType::kFile) {
            FUZZ_CHECK(e.data.size() == e.size, e.path + ": data is not its size");
        }
    }
    return 0;
}
