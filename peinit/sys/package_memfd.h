#pragma once

// A verified payload as a file descriptor the module loader can pass to finit_module(2),
// without the bytes ever touching a path: an anonymous memfd, filled once, then sealed.

#include <cstddef>
#include <span>
#include <string>

#include "peinit/core/result.h"

namespace peinit {

// An owned, read-only file descriptor on a sealed memfd (closed on destruction).
class SealedMemfd {
  public:
    SealedMemfd() = default;
    explicit SealedMemfd(int fd) : fd_(fd) {}
    SealedMemfd(SealedMemfd&& other) noexcept : fd_(other.Release()) {}
    SealedMemfd& operator=(SealedMemfd&& other) noexcept;
    SealedMemfd(const SealedMemfd&) = delete;
    SealedMemfd& operator=(const SealedMemfd&) = delete;
    ~SealedMemfd();

    int fd() const { return fd_; }
    // Hands the descriptor to the caller, who then closes it.
    int Release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

  private:
    int fd_ = -1;
};

// Copies `bytes` into a new memfd named `name` (visible in /proc/PID/fd, for debugging), seals
// it against every change (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW, then F_SEAL_SEAL so the
// seals themselves are final), and returns a read-only descriptor to it.
//
// Why read-only: finit_module reads through kernel_read_file(), which refuses a file that is
// open for writing anywhere (deny_write_access -> ETXTBSY), and the memfd_create descriptor is
// read-write. So the memfd is reopened O_RDONLY through /proc/self/fd and the writable
// descriptor closed; /proc must be mounted (peinit mounts it before the module stage). Needs
// Linux >= 3.17 (memfd_create, seals).
Result<SealedMemfd> MakeSealedMemfd(const std::string& name, std::span<const std::byte> bytes);

}  // namespace peinit
