#pragma once

// The handover stage: what the real root's demand loads need from the initramfs, done
// after the lock and before the handoff. Criticality: degrade; every failure fails closed.
//
// - Always: the effective blacklist (hive Blacklist, modprobe.blacklist=) is exported to
//   /run/modprobe.d/peinit-blacklist.conf, which every libkmod user reads (modprobe,
//   systemd-udevd, systemd-modules-load): `blacklist NAME` stops alias lookups and
//   `install NAME /bin/false` stops an explicit `modprobe NAME`. A direct finit_module(2) (insmod)
//   is not covered: only the lock or the helper path stops that.
// - With root= and peinit's own helper installed (AutoLoadPolicy enabled or allow-list, not
//   locked): the helper outlives the initramfs without any copy. Everything it executes and
//   reads is on the sealed tree (peinit/core/sealed_tree.h), read-only since the autoload stage,
//   which moves into the real root with /run; kernel.modprobe names it already and is read back.
//   /run/peinit/policy.json (the status record) names the tree as `modload_root`. A tree that
//   was not built, or anything failing or throwing on the way, empties kernel.modprobe instead
//   (demand loads fail at once: never a looser policy than PID 1 applied) and is logged as an
//   error; the path is sealed all the same, and a seal that fails or throws empties the
//   path before it is tried once more (issue 24 point 4: every step is contained,
//   peinit/core/contain.h).
// - With root= and the lock applied: kernel.modprobe is emptied (the kernel refuses every load
//   anyway, and the initramfs path would dangle).
// /run/peinit/autoload.json is rewritten with the helper the real root gets.

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

inline constexpr const char* kBlacklistExportPath = "/run/modprobe.d/peinit-blacklist.conf";

Result<void> RunHandover(BootContext& ctx);

// peinitctl (/usr/bin/peinitctl, when the image has it) copied to /run/peinit/bin for the real
// root, which may not have peinit: `peinitctl status` there. With root= the root stage's thread
// does it while the modules load (stages/root/root.h); without that thread the handover
// does.
Result<void> CopyPeinitctl(const BootPaths& paths);

// The text of kBlacklistExportPath for `policy`.
std::string BlacklistExport(const EffectivePolicy& policy);

}  // namespace peinit
