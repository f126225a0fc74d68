#pragma once

// The builder's view of units, the hive and the image's command line, through the core
// parsers peinit itself uses at boot (peinit/core/units.h, hive.h, cmdline.h): the builder
// accepts exactly what peinit accepts.

#include <string>
#include <vector>

#include "initramfs/image_definition.h"
#include "initramfs/kernel_modules.h"
#include "peinit/core/hive.h"
#include "peinit/core/result.h"
#include "peinit/core/units.h"
#include "peinit/sys/config_files.h"

namespace peinit::image {

struct UnitFile {
    std::string name;  // file name, shipped as /etc/peinit/units/NAME
    std::string host_path;
    std::string generated_text;  // a unit the builder wrote (host_path empty)
};

// A unit the builder writes itself (modules_from = "host": host_modules.h HostUnit).
struct GeneratedUnit {
    std::string name;  // file name, "host-modules.toml"
    std::string text;
};

// A service's program, which must be in the image.
struct ServiceProgram {
    std::string service;
    std::string path;    // exec[0], absolute
    std::string origin;  // "FILE:LINE" of the [[service]]
};

struct UnitScan {
    std::vector<UnitFile> files;      // sorted by name
    std::vector<ModuleWant> modules;  // every module the units load at boot
    std::vector<ServiceProgram> services;
    UnitSet set;  // the units without errors, linked, in load order
};

// Parses and links the unit files (*.toml, *.conf) of every directory, as one set (the image
// ships them into one directory), with the parser peinit uses (ParseUnits). Every problem is
// appended to `problems` ("FILE:LINE: message"); the scan holds what the units without errors
// load and run. Other files in the directories are an error too: peinit would ignore them.
// `generated` units join the set (and collide with a unit file of the same name); their
// modules are not in UnitScan::modules (the caller has them with the rule behind each).
UnitScan ScanUnits(const std::vector<Located<std::string>>& dirs,
                   std::vector<std::string>& problems,
                   const std::vector<GeneratedUnit>& generated = {});

// The image's hive (peinit's own loader, config_files.h): any problem, which would put peinit
// into the hardened fallback at boot, is an error here, "FILE:LINE: message". Ownership is the
// image's business (the builder writes everything as root, 0644), so the source file's trust
// is not checked; peinit checks the shipped file at boot.
inline Result<Hive> LoadImageHive(const std::string& path) {
    return LoadHiveOrError(path, {.check_trust = false, .follow_symlinks = true});
}

// What the image's kernel command line contributes: modules_load= wants, the deny list, and
// errors for parameters peinit would not understand.
struct CmdlineEffect {
    std::vector<ModuleWant> modules;
    std::vector<ModuleDeny> deny;
};
Result<CmdlineEffect> CheckCmdline(const std::string& cmdline, const std::string& origin);

}  // namespace peinit::image
