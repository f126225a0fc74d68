#pragma once

// The autoload stage: installs the demand-load helper before any module is loaded, so
// that demand loads triggered during the boot (a module's init asking for a crypto algorithm,
// a service opening a socket) already go through peinit's policy. Criticality: fatal.
//
// - AutoLoadPolicy enabled / allow-list: kernel.modprobe = the hive's
//   Machine\System\Kernel\Modprobe when set, else peinit's own helper kPeinitModprobePath (a link
//   to the peinit binary, which acts as the helper when run under that name; created here, pointing
//   at the running binary, when the image does not ship it).
// - AutoLoadPolicy disabled: kernel.modprobe is emptied (writing "\n"); with an empty path the
//   kernel's __request_module() returns -ENOENT at once and never starts a helper.
// The value is read back; a mismatch is an error (fatal: the demand-load policy would not be
// what the registry says). Logs `autoload policy=X helper=Y` and writes
// /run/peinit/autoload.json (version 1: policy and its source, helper and its source, the
// value read back, the allow-list).
// Guarantees to later stages: kernel.modprobe is what the effective AutoLoadPolicy requires.

#include <string_view>

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

inline constexpr std::string_view kPeinitModprobePath = "/sbin/peinit-modprobe";

Result<void> RunAutoload(BootContext& ctx);

// /run/peinit/autoload.json (also rewritten by the handover stage for the real root).
void WriteAutoloadRecord(const BootContext& ctx, const std::string& helper,
                         PolicySource helper_source, const std::string& read_back,
                         const std::string& error);

// The kernel.modprobe value the effective policy requires ("" for disabled).
std::string HelperPathFor(const EffectivePolicy& policy);

}  // namespace peinit
