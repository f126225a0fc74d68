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
//   locked): the helper must outlive the initramfs. /run moves into the real root, so it is
//   copied there: /run/peinit/bin/peinit-modprobe (this binary; peinitctl is there already,
//   copied by the root stage's thread, CopyPeinitctl), the shared
//   libraries they need beyond glibc in /run/peinit/lib (their DT_RPATH), and the module tree
//   the helper resolves and loads from in /run/peinit/modload (mode 0700: depmod indexes,
//   modprobe.d, the signed packages and trusted keys; .ko paths as empty stubs). policy.json then names
//   that tree as `modload_root`, and kernel.modprobe is pointed at the copy and read back.
//   Anything failing or throwing on the way empties kernel.modprobe instead (demand loads fail
//   at once: never a looser policy than PID 1 applied) and is logged as an error; the path is
//   sealed all the same, and a seal that fails or throws empties the path before it is
//   tried once more (issue 24 point 4: every step is contained, peinit/core/contain.h).
// - With root= and the lock applied: kernel.modprobe is emptied (the kernel refuses every load
//   anyway, and the initramfs path would dangle).
// /run/peinit/autoload.json is rewritten with the helper the real root gets.

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

inline constexpr const char* kBlacklistExportPath = "/run/modprobe.d/peinit-blacklist.conf";
inline constexpr const char* kHandedOverHelperPath = "/run/peinit/bin/peinit-modprobe";
inline constexpr const char* kModloadRoot = "/run/peinit/modload";

Result<void> RunHandover(BootContext& ctx);

// peinitctl (/usr/bin/peinitctl, when the image has it) copied to /run/peinit/bin for the real
// root, which may not have peinit: `peinitctl status` there. With root= the root stage's thread
// does it while the modules load (stages/handoff/handoff.h); without that thread the handover
// does.
Result<void> CopyPeinitctl(const BootPaths& paths);

// The text of kBlacklistExportPath for `policy`.
std::string BlacklistExport(const EffectivePolicy& policy);

}  // namespace peinit
