#pragma once

namespace peinit {

// The PID-1 path of the peinit binary: builds the boot context, runs the stage table, starts the
// services, then reaps children and handles signals forever. Never returns and never throws:
// a fatal stage error takes the one emergency path (lock if policy requires it, optional
// emergency shell, power off).
//
// Signals: SIGCHLD reaps; SIGTERM, SIGPWR and SIGUSR2 power off; SIGINT (Ctrl-Alt-Del) and
// SIGUSR1 reboot. Shutdown sends SIGTERM to every process, waits up to 3 s, sends SIGKILL,
// syncs, then calls reboot(2).
[[noreturn]] void RunPid1() noexcept;

struct BootContext;

// Whether the emergency path may start the image's shell: peinit.emergency=shell was given and
// module loading is locked, or the lock is not required (LockAfterBoot false in a policy that
// was read). A required lock that could not be applied never leaves a shell behind it.
bool EmergencyShellAllowed(const BootContext& ctx);

}  // namespace peinit
