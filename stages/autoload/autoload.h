#pragma once

// The autoload stage: installs the demand-load helper before any module is loaded, so
// that demand loads triggered during the boot (a module's init asking for a crypto algorithm,
// a service opening a socket) already go through peinit's policy. Criticality: fatal.
//
// - AutoLoadPolicy enabled / allow-list: first the sealed tree (stages/autoload/sealed_tree.h,
//   peinit/core/sealed_tree.h) is built and remounted read-only; then kernel.modprobe = the hive's
//   Machine\System\Kernel\Modprobe when set, else peinit's own helper kPeinitModprobePath, the
//   static wrapper on the sealed tree (the legacy value /sbin/peinit-modprobe names it too).
//   A tree that cannot be built fails closed: kernel.modprobe is emptied (demand loads fail at
//   once) and the error is logged and recorded; the boot goes on.
// - AutoLoadPolicy disabled: kernel.modprobe is emptied (writing "\n"); with an empty path the
//   kernel's __request_module() returns -ENOENT at once and never starts a helper.
// The value is read back; a mismatch is an error (fatal: the demand-load policy would not be
// what the registry says).
// Then the kernel's one-way gates (R-27, module_lockdown(2), trigger `registry` when the policy
// came from the hive, else `boot-orchestrator-step`), each read back with its QUERY op:
// - disabled: MODULE_LOCKDOWN_DISABLE_AUTOLOAD, so request_module fails at once for every
//   caller whatever kernel.modprobe says;
// - enabled / allow-list without root=: MODULE_LOCKDOWN_SEAL_MODPROBE, so no process (root
//   included) can point demand loads elsewhere. With root= the handover stage sets the real
//   root's helper and seals after it.
// A kernel without the gates (ENOSYS: stock kernel; EINVAL: an older patch) leaves the policy
// enforced only by the helper path (a warning, recorded as gate "none"); any other failure is
// the stage's error.
// Logs `autoload policy=X helper=Y gate=G` and writes /run/peinit/autoload.json (version 1:
// policy and its source, helper and its source, the value read back, the allow-list, the gate).
// Guarantees to later stages: kernel.modprobe is what the effective AutoLoadPolicy requires.

#include <string_view>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {
class Kernel;
}

namespace peinit {

inline constexpr std::string_view kPeinitModprobePath = "/run/peinit/ro/bin/peinit-modprobe";
// What images and hives before the sealed tree named peinit's helper: taken as kPeinitModprobePath.
inline constexpr std::string_view kLegacyPeinitModprobePath = "/sbin/peinit-modprobe";

Result<void> RunAutoload(BootContext& ctx);

// /run/peinit/autoload.json (also rewritten by the handover stage for the real root).
// `gate`: "autoload-disabled", "modprobe-sealed", "handover" (sealed by the handover stage),
// "none" (the kernel has no gate: enforced only by the helper path) or "" (not applied).
void WriteAutoloadRecord(const BootContext& ctx, const std::string& helper,
                         PolicySource helper_source, const std::string& read_back,
                         const std::string& error, const std::string& gate);

// Applies one of module_lockdown's one-way gates (`op`: DISABLE_AUTOLOAD or SEAL_MODPROBE) and
// reads it back with `query_op`. Returns true when set, false when the kernel has no such gate
// (ENOSYS, EINVAL); any other failure (EPERM, a read-back of 0) is an error naming the op.
Result<bool> ApplyAutoloadGate(Kernel& kernel, unsigned int op, unsigned int query_op,
                               unsigned int trigger);
// The trigger the gates are set with: `registry` for a hive policy, else the boot step.
unsigned int GateTrigger(const EffectivePolicy& policy);

// The kernel.modprobe value the effective policy requires ("" for disabled).
std::string HelperPathFor(const EffectivePolicy& policy);

}  // namespace peinit
