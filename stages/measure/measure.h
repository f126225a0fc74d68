#pragma once

// Measured boot from the stages (R-33; ATTESTATION.md). Not a stage of its own: each
// measurement is taken by the stage whose fact it records, right before that fact takes effect.
//
// - config (StartMeasurement): opens the TPM when there is one (ctx.tpm->Present(); nothing is
//   loaded otherwise) and measures `image` (SHA-256 of /etc/peinit/image.json, kernel release,
//   key fingerprint) and `policy` (hive digest, command-line tightening, LockAfterBoot,
//   AutoLoadPolicy, SigningPolicy, blacklist digest) before any stage applies the policy;
// - modules, coldplug: each module from ModloadSession::LoadEntry, right before init_module;
// - lockdown (MeasureModuleSet, MeasureLock): the module set before the lock, then the lock as
//   read back (or that none was requested);
// - handoff (MeasureLeaveInitrd): `leave-initrd` right before the real root takes over, after
//   which PID 1 measures nothing and closes the TPM.
// A TPM error never stops or fails a stage (Measurement stops measuring and records it). Each
// point writes /run/peinit/measurements.json for peinitctl.

#include "peinit/core/boot_context.h"

namespace peinit {

void StartMeasurement(BootContext& ctx);
void MeasureModuleSet(BootContext& ctx);
void MeasureLock(BootContext& ctx);
void MeasureLeaveInitrd(BootContext& ctx);
// /run/peinit/measurements.json from ctx.measurement ("not-measured" when there is none).
void WriteMeasurementRecord(const BootContext& ctx);

// The policy event's `cmdline`: the kernel command line's tightening the effective policy took
// ("peinit.lock=1", "peinit.autoload=disabled", "module.sig_enforce=1",
// "modprobe.blacklist=NAME" for each module it added), in that order.
std::vector<std::string> CmdlineTightening(const EffectivePolicy& policy);
// The policy event's `blacklist_sha256`: SHA-256 of the effective blacklist's module names,
// sorted, each followed by "\n" (hive and command line together).
std::string BlacklistDigest(const EffectivePolicy& policy);

}  // namespace peinit
