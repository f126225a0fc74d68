#pragma once

// The module sets of `modules_from = "host"` and `"generic"` (initramfs/IMAGE.md, "Module
// set"), as wants for ResolveModuleClosure, each with the rule that chose it as its origin
// ("host: root / on vda1 (ext4): virtio1 driver", "generic: storage controller (ATA/SATA)"),
// which `peinit-image plan` prints beside the module.

#include <string>
#include <vector>

#include "initramfs/image_definition.h"
#include "initramfs/image_units.h"
#include "initramfs/kernel_modules.h"
#include "peinit/core/plan.h"
#include "peinit/core/result.h"
#include "peinit/sys/host_devices.h"

namespace peinit::image {

struct ModeWants {
    std::vector<ModuleWant> wants;
    // Not fatal: a device whose driver was a module on this machine and that the target
    // kernel has neither by name nor by modalias; a file system type with no module.
    std::vector<std::string> warnings;
};

// Resolves a host scan against the target kernel's `db`, device by device:
//  1. a bound driver whose module the target has (by the driver/module name, else by the
//     driver's own name when it is built into this machine's kernel): that module;
//  2. otherwise the device's modalias, resolved as modprobe would (every module it matches);
//  3. nothing, when the device has no driver and its modalias matches nothing (bridges, hubs);
//     a warning when this machine's kernel had a module for it.
// Rule modules (file system type, dm target, MD level) are looked up by name ("fs-TYPE" first
// for a file system). Built-in modules resolve like others; the planner ships nothing for them.
Result<ModeWants> HostModuleWants(const HostScan& scan, ModuleDb& db, const std::string& kver);

// Every module of the kernel's tree under the generic directories (kGenericDirs), except test
// modules that fail or misbehave by design (kGenericExcluded).
struct GenericDir {
    const char* prefix;  // relative to lib/modules/KVER
    const char* what;    // "storage controller (ATA/SATA)"
};
extern const std::vector<GenericDir> kGenericDirs;
extern const std::vector<std::string> kGenericExcluded;
Result<std::vector<ModuleWant>> GenericModuleWants(const KernelTree& kernel);

}  // namespace peinit::image

namespace peinit::image {

// The unit that makes PID 1 load the host set at boot, before the lock (the root's file system
// module would otherwise be demand-loaded by the mount after it): "host-modules.toml", one
// [[module]] per module name of `wants`, sorted, each `if_hardware_present = true` (an image
// booted on changed hardware reports a driver without its device as no-device, not a failure).
GeneratedUnit HostModulesUnit(const ModeWants& wants);

// The wants of the definition's `modules_from` against `kernel` (none for "units"); "host"
// reads the running machine under `host_root` (ScanHost).
Result<ModeWants> ModeModuleWants(ModuleMode mode, const KernelTree& kernel,
                                  const std::string& host_root);

}  // namespace peinit::image
