#include "peinit/sys/record.h"

#include <fcntl.h>
#include <unistd.h>

#include <ctime>


namespace peinit {

Result<void> WriteFileAtomically(const std::string& path, const std::string& text) {
    std::string tmp = path + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoErr("open " + tmp);
    size_t done = 0;
    while (done < text.size()) {
        ssize_t n = write(fd, text.data() + done, text.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            close(fd);
            unlink(tmp.c_str());
            return ErrnoErr("write " + tmp, err);
        }
        done += static_cast<size_t>(n);
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return ErrnoErr("sync " + tmp, err);
    }
    if (rename(tmp.c_str(), path.c_str()) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return ErrnoErr("rename " + tmp + " to " + path, err);
    }
    return Ok();
}

int64_t BootOffsetMs() {
    timespec ts{};
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string WallTimeUtc() {
    time_t now = time(nullptr);
    tm utc{};
    gmtime_r(&now, &utc);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return buf;
}

}  // namespace peinit
