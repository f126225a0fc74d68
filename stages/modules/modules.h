#pragma once

// The boot-time module stage (R-09..R-14). Criticality: degrade.
//
// 1. Signing policy: with SigningPolicy=enforce, writes 1 to
//    /sys/module/module/parameters/sig_enforce before any load and reads it back; if the kernel
//    does not then report enforcement, nothing is loaded (fail closed). With warn, it is left.
// 2. The boot-time set: every unit's modules (requested by "unit NAME", `optional`
//    honoured), then `modules_load=` / `rd.modules_load=`; `mod.param=` options; the blacklist
//    (hive and `modprobe.blacklist=`, each with its source, plus the tree's modprobe.d).
//    All libkmod work happens here, on the calling thread: the plan against
//    ROOT/lib/modules/<running release> (ctx.kernel_release, uname -r when empty).
// 3. Signed packages, through the boot's module-loading session, which this stage opens
//    and leaves in ctx.modload for coldplug (peinit/modload/session.h): every package in
//    ROOT/usr/lib/peinit/packages is read once and its signature and manifest checked against
//    ROOT/etc/peinit/keys and the running release (at boot PID 1 starts this, and computes the
//    members' digests, on a thread of its own before the first stage: "package-prefetch" in
//    ctx.background, taken over here); the members the plan loads (the boot set and
//    its dependencies) are hashed before the first load, the rest only if coldplug needs them.
//    A module is loaded only from verified bytes, with init_module(2) on those very bytes (no
//    path is opened again between check and load). A module from a rejected package fails with
//    `package rejected (<reason>)`, and a package with a tampered boot-set member loads nothing
//    of the boot set; one that no package holds fails with `not in a verified package`: a loose
//    .ko in the module tree is never loaded (fail closed). The tree only supplies the indexes.
// 4. Loading: a bounded pool of workers (ctx.policy.workers, exactly; 1 = strictly
//    sequential in plan order; else the number of CPUs capped at 8, growing up to 16 while the
//    loads in flight leave the CPUs idle, i.e. module inits that sleep) starts each module as soon as its
//    dependencies are live, honouring unit `after` and `sequential` barriers (loader.h); never
//    loads a module twice; EEXIST and built-ins count as success; a failure skips its
//    dependents with the named reason and stops nothing else. Every thread is joined before
//    the stage returns.
// 5. Outcomes: ctx.module_outcomes has one entry per planned module; /run/peinit/modules.json
//    (version 1, with each module's `waits_for` and ready time, and the stage's `phases`:
//    packages, plan, hashing, first load, loads) is written atomically; the log gets one line
//    per failure, blacklist and skip and one summary line `modules done ok=N failed=M skipped=K blacklisted=B ms=T workers=W`.
//
// Guarantees to the next stage (lockdown): when it returns, every boot-time module has been
// attempted and no thread of it is left. Returns an error only when it could not run at
// all (no kernel release, no readable module tree while modules were requested, a db failure);
// failed modules are recorded, not returned.

#include "peinit/core/boot_context.h"
#include "peinit/core/result.h"

namespace peinit {

Result<void> RunModules(BootContext& ctx);

// The default worker count: online CPUs capped at 8 (at least 1).
int DefaultModuleWorkers();

}  // namespace peinit
