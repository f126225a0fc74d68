#pragma once

// BootContext: what the boot stages share. main() builds it (command line, units, hive and the
// effective policy, paths under a root so tests point it at a fixture tree, the Kernel seam)
// and each stage reads it and fills in its results for the next stages and for status.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peinit/core/background.h"
#include "peinit/core/cmdline.h"
#include "peinit/core/device_modalias.h"
#include "peinit/core/hive.h"
#include "peinit/core/plan.h"
#include "peinit/core/units.h"

namespace peinit {

class Kernel;
class ModloadSession;
class TrustStore;
class UeventSocket;
namespace tpm {
class Measurement;
class Tpm;
}  // namespace tpm

// Every file peinit reads, under one root ("/" at boot, a fixture tree in tests).
struct BootPaths {
    std::filesystem::path root = "/";

    std::filesystem::path Under(const std::filesystem::path& absolute) const {
        return root / absolute.relative_path();
    }
    std::filesystem::path UnitsDir() const { return Under("/etc/peinit/units"); }
    std::filesystem::path HiveFile() const { return Under("/etc/peinit/hive.toml"); }
    std::filesystem::path ModulesDir() const { return Under("/lib/modules"); }
    std::filesystem::path PackagesDir() const { return Under("/usr/lib/peinit/packages"); }
    std::filesystem::path TrustedKeysDir() const { return Under("/etc/peinit/keys"); }
    std::filesystem::path CmdlineFile() const { return Under("/proc/cmdline"); }
};

// The result of one boot-time module attempt, filled by the module stage.
struct ModuleOutcome {
    enum class Status {
        kLoaded,         // loaded by us
        kAlreadyLoaded,  // EEXIST or built-in: counts as success
        kFailed,         // the kernel refused it (error holds errno + message)
        kSkipped,        // not attempted: a dependency failed, or optional and absent
        kBlacklisted,    // denied by the blacklist
        kBuiltin,        // built into the kernel: counts as success, nothing loaded
        kMissing,        // not in the module tree for this kernel
        kNoDevice,       // its init found no device (ENODEV/ENXIO) and its unit said
                         // if_hardware_present: not a failure
    };
    std::string module;  // resolved module name
    std::string unit;    // the unit that asked for it ("" for dependencies / cmdline)
    Status status = Status::kSkipped;
    int error = 0;       // errno for kFailed (0 when the failure was not the kernel's)
    std::string reason;  // human-readable detail for failed/skipped/blacklisted
    // Not attempted because the policy refused it; `reason` says why, for people.
    bool refused = false;
    std::chrono::microseconds duration{0};
    // Every chain that wanted it, e.g. "unit storage -> ext4" (from the plan), for people.
    std::vector<std::string> requested_by;
    // Who wanted it, directly or through a dependency (typed, for code).
    std::vector<RequestOrigin> origins;
    // The verified package its bytes came from ("" when nothing was loaded from a package).
    std::string package;
    // When the attempt started, from the start of the module stage.
    std::chrono::microseconds start{0};
    // When every module it waits for had been attempted (0 when it waits for none).
    std::chrono::microseconds ready{0};
    // The modules that had to be live (or attempted, for soft dependencies) before it started.
    std::vector<std::string> waits_for;

    bool Succeeded() const {
        return status == Status::kLoaded || status == Status::kAlreadyLoaded ||
               status == Status::kBuiltin;
    }
};

// "loaded", "already-loaded", "failed", "skipped", "blacklisted", "builtin", "missing",
// "no-device".
inline std::string_view ToString(ModuleOutcome::Status status) {
    switch (status) {
        case ModuleOutcome::Status::kLoaded:
            return "loaded";
        case ModuleOutcome::Status::kAlreadyLoaded:
            return "already-loaded";
        case ModuleOutcome::Status::kFailed:
            return "failed";
        case ModuleOutcome::Status::kSkipped:
            return "skipped";
        case ModuleOutcome::Status::kBlacklisted:
            return "blacklisted";
        case ModuleOutcome::Status::kBuiltin:
            return "builtin";
        case ModuleOutcome::Status::kMissing:
            return "missing";
        case ModuleOutcome::Status::kNoDevice:
            return "no-device";
    }
    return "unknown";
}

// What the lockdown stage did, for the boot record and status.
struct LockOutcome {
    bool requested = false;
    PolicySource requested_by = PolicySource::kDefault;
    // "syscall" (module_lockdown), "modules_disabled" (unpatched kernel), "" when not locked.
    std::string mechanism;
    std::string trigger;  // "registry", "boot-orchestrator-step"
    bool locked = false;  // read back from the kernel after the lock
    std::string error;    // why the lock could not be applied
};

struct BootContext {
    explicit BootContext(Kernel& k) : kernel(k) {}

    Kernel& kernel;
    BootPaths paths;
    Cmdline cmdline;
    UnitSet units;
    Hive hive;
    EffectivePolicy policy;
    // The running kernel's release (uname -r). The module stage fills it when empty; tests set
    // it to their fixture tree's release.
    std::string kernel_release;
    std::vector<ModuleOutcome> module_outcomes;
    // False until the config stage has read the hive: until then the policy is unknown and the
    // emergency path fails closed (it locks).
    bool config_loaded = false;
    LockOutcome lock;
    // kernel.printk_devkmsg as the kernel had it before the early mounts set it to "on" for
    // PID 1's log ("" when unreadable): the handoff gives the real root its rate limit back.
    std::string printk_devkmsg_before;
    // PID 1 made the packages directory a read-only bind mount of itself (MountPackagesReadOnly,
    // peinit/modload/packages.h) before reading it; the handoff unmounts it.
    bool packages_mounted_read_only = false;
    // The kernel's uevent count (/sys/kernel/uevent_seqnum) right before coldplug enumerated the
    // devices (0: coldplug did not run). Devices of events up to it were present for coldplug;
    // PID 1's hot-add (peinit/init/hotplug.h) handles the later ones.
    uint64_t coldplug_seqnum = 0;
    // Devices coldplug saw added but did not handle because it reached its settle bound
    // (stages/coldplug/coldplug.h): PID 1's hot-add takes them first.
    std::vector<DeviceModalias> coldplug_left;
    // PID 1's uevent socket (peinit/sys/uevent.h), open from before the first stage; null in
    // tests and offline.
    UeventSocket* uevents = nullptr;
    // What runs beside the stages, each piece under its name in the stage table
    // (stages/stage.h, BootBackground, which says who starts, opens and joins it):
    // package-prefetch (PackagePrefetch, peinit/modload/packages.h: started by PID 1 before the
    // first stage, taken by the module stage; not started in tests and offline),
    // root-preparation (RootPreparation, stages/root/root.h: root= found and mounted ahead,
    // started by the root stage, its gate opened by the module stage, taken by the handoff) and
    // device-scan (DeviceScan, peinit/sys/uevent.h: coldplug's enumeration made beside the
    // module stage's loads when `uevents` is there, taken by coldplug).
    BackgroundWork background;
    // The fatal stage whose failure stopped the boot (RunStages), for the emergency record.
    std::string failed_stage;
    // The module-loading session (peinit/modload/session.h): opened by the module stage, used
    // by coldplug and the handover, closed after the last stage so that PID 1 keeps no package
    // bytes and no libkmod context.
    std::shared_ptr<ModloadSession> modload;
    // The program the sealed tree runs as the demand-load helper (stages/autoload/sealed_tree.h):
    // nullopt is the running peinit with every shared object its loader mapped; tests set it.
    struct HelperProgram {
        std::filesystem::path binary;  // becomes bin/peinit in the tree
        // (file to copy, absolute path inside the tree): the libraries and the loader.
        std::vector<std::pair<std::filesystem::path, std::filesystem::path>> files;
    };
    std::optional<HelperProgram> helper_program;
    // The sealed tree once it is read-only (ctx.paths.Under(kSealedRoot) at boot; empty when it
    // could not be built): the helper's and PID 1's hot-add sessions resolve and load from it
    // only, never from the writable root.
    std::filesystem::path sealed_root;
    // The trusted package keys, loaded once from the sealed tree by the first hot-add session
    // and kept for the later ones.
    std::shared_ptr<const TrustStore> trust;
    // The TPM measured boot uses (peinit/tpm/tpm.h): PID 1 sets the system's, tests a FakeTpm;
    // null: none. The config stage measures only when it is Present().
    std::shared_ptr<tpm::Tpm> tpm;
    // PID 1's measurements (stages/measure/measure.h), from the config stage to leave-initrd;
    // null when nothing is measured.
    std::shared_ptr<tpm::Measurement> measurement;
};

}  // namespace peinit
