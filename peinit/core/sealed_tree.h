#pragma once

// The sealed tree (R-35, issue 24 point 1): everything the kernel executes for a demand load
// and everything that decides what it loads, on one tmpfs that PID 1 fills in the autoload
// stage and remounts MS_RDONLY|MS_NOSUID|MS_NODEV before any module, service or real init runs.
// A root process without SeLoadDriver (CAP_SYS_MODULE) cannot write it (EROFS), cannot remount
// or unmount it (that takes CAP_SYS_ADMIN, SeTcb), and cannot move it aside: /run and
// /run/peinit are both mount points, and rename(2) of a mount point fails with EBUSY.
//
// Layout (paths inside the tree):
//   bin/peinit-modprobe   the program kernel.modprobe names: a static executable (no loader, no
//                         library, nothing read from the writable root) that chroots into the
//                         tree and executes bin/peinit as the helper, so that its loader, its
//                         libraries, ld.so.preload and ld.so.cache are the tree's (none of the
//                         last two exists there)
//   bin/peinit            the peinit binary (the helper dispatches on argv[0])
//   lib/                  every shared object peinit has mapped (glibc included), by the name
//                         the loader found it under; the loader also at its PT_INTERP path
//   policy.json           the policy record the helper enforces (peinit/record/policy.h),
//                         modload_root = the tree
//   etc/peinit/keys/      the trusted package keys
//   usr/lib/peinit/packages/  the signed packages
//   lib/modules/KVER/     the depmod indexes (module files as empty stubs: the bytes come only
//                         from packages), etc/modprobe.d/ and lib/modprobe.d/
//   packages.index        which package file provides which module (a hint, see packages.h)

#include <string_view>

namespace peinit {

inline constexpr const char* kSealedRoot = "/run/peinit/ro";
// kernel.modprobe when peinit's own helper enforces the policy.
inline constexpr const char* kSealedHelperPath = "/run/peinit/ro/bin/peinit-modprobe";
inline constexpr const char* kSealedPolicyPath = "/run/peinit/ro/policy.json";
inline constexpr const char* kSealedPackagesIndex = "/run/peinit/ro/packages.index";
// Inside the tree (after the wrapper's chroot).
inline constexpr const char* kSealedPeinitInTree = "/bin/peinit";
inline constexpr const char* kSealedLibDirInTree = "/lib";
// Where an image ships the static wrapper (the build's peinit-modprobe target).
inline constexpr const char* kImageHelperWrapperPath = "/usr/lib/peinit/peinit-modprobe";
// The descriptor of the real root the wrapper passes to the helper (decimal), so that the
// helper, once its loader has mapped every library from the tree, returns to the real root
// (fchdir + chroot) and reads /proc, /sys and /dev there.
inline constexpr const char* kRealRootFdVariable = "PEINIT_REAL_ROOT_FD";

}  // namespace peinit
