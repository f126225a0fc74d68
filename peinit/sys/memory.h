#pragma once

// PID 1's memory after the boot (R-16's "PID 1 stays small").
//
// Most of what PID 1 has resident once the stages are done is not its own data but pages of its
// binary and shared libraries that the stages ran (libcrypto for the package signatures,
// libkmod, libblkid, ...). In an initramfs they live in the page cache of the rootfs either way;
// PID 1's page tables just keep pointing at them. DropCleanFileMappings unmaps those pages from
// PID 1 (MADV_DONTNEED) for every private file mapping that holds no page of its own (no
// copy-on-write page, `Anonymous: 0 kB` in /proc/self/smaps): nothing is lost, the page cache
// keeps them, and whatever the supervisor runs again faults back in. Mappings with private
// pages (relocated data, .data, .bss), the heap, the stacks and special mappings are left alone.

#include <cstddef>

#include "peinit/core/result.h"

namespace peinit {

struct DroppedMappings {
    std::size_t mappings = 0;  // mappings advised
    std::size_t kib = 0;       // their resident size before
};

Result<DroppedMappings> DropCleanFileMappings();

// This process's resident set (VmRSS), in KiB; 0 when unreadable.
long ResidentKib();

}  // namespace peinit
