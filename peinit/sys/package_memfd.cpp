#include "peinit/sys/package_memfd.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace peinit {
namespace {

constexpr unsigned kAllSeals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

struct FdCloser {
    int fd;
    ~FdCloser() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

SealedMemfd& SealedMemfd::operator=(SealedMemfd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.Release();
    }
    return *this;
}

SealedMemfd::~SealedMemfd() {
    if (fd_ >= 0) ::close(fd_);
}

Result<SealedMemfd> MakeSealedMemfd(const std::string& name, std::span<const std::byte> bytes) {
    FdCloser rw{::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING)};
    if (rw.fd < 0) return ErrnoErr("memfd_create " + name);

    // Size it first so a short write can never leave a hole that reads back as zeros unnoticed
    // (the size check below would catch it too).
    if (::ftruncate(rw.fd, static_cast<off_t>(bytes.size())) != 0) {
        return ErrnoErr("memfd " + name + ": ftruncate");
    }
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n =
            ::pwrite(rw.fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return ErrnoErr("memfd " + name + ": write");
        done += static_cast<std::size_t>(n);
    }
    if (::fcntl(rw.fd, F_ADD_SEALS, kAllSeals) != 0) {
        return ErrnoErr("memfd " + name + ": F_ADD_SEALS");
    }
    int seals = ::fcntl(rw.fd, F_GET_SEALS);
    if (seals < 0 || (static_cast<unsigned>(seals) & kAllSeals) != kAllSeals) {
        return Err("memfd " + name + ": seals did not stick");
    }

    std::string proc_path = "/proc/self/fd/" + std::to_string(rw.fd);
    int ro = ::open(proc_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (ro < 0) return ErrnoErr("memfd " + name + ": reopen read-only via " + proc_path);
    SealedMemfd sealed(ro);

    // The reopened descriptor must be the same sealed inode with exactly our bytes' length.
    struct stat rw_st, ro_st;
    if (::fstat(rw.fd, &rw_st) != 0 || ::fstat(ro, &ro_st) != 0) {
        return ErrnoErr("memfd " + name + ": fstat");
    }
    if (rw_st.st_ino != ro_st.st_ino || rw_st.st_dev != ro_st.st_dev ||
        static_cast<std::uint64_t>(ro_st.st_size) != bytes.size()) {
        return Err("memfd " + name + ": reopened descriptor does not match");
    }
    return sealed;
}

}  // namespace peinit
