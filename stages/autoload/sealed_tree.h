#pragma once

// Builds the sealed tree (peinit/core/sealed_tree.h) in the autoload stage, before any module is
// loaded and long before any service or the real root's init runs:
//   1. a tmpfs at ROOT/run/peinit/ro (MS_NOSUID|MS_NODEV, mode 0755);
//   2. the static wrapper the image ships (/usr/lib/peinit/peinit-modprobe) as bin/peinit-modprobe,
//      the helper program (the running peinit) as bin/peinit, its loader at its PT_INTERP path
//      and every shared object it mapped in lib/;
//   3. copies of the trusted keys, the signed packages, the module tree's indexes (modules as
//      empty stubs), modprobe.d, the policy record with modload_root = the tree, and the
//      packages index;
//   4. a remount MS_REMOUNT|MS_RDONLY|MS_NOSUID|MS_NODEV (the whole tmpfs, every mount of it),
//      read back through statvfs(3): a tree that does not read back read-only is an error.
// On any error the caller fails closed (no helper, no hot-add): a tree half filled or
// writable is never named by kernel.modprobe. ctx.sealed_root is set only on success.

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

Result<void> BuildSealedTree(BootContext& ctx);

// The running peinit (/proc/self/exe) and every shared object its loader mapped
// (dl_iterate_phdr), each by the path the loader opened: the loader at that path in the tree,
// the others in lib/ under their file name (the name DT_NEEDED asked for).
Result<BootContext::HelperProgram> RunningHelperProgram();

}  // namespace peinit
