#pragma once

// The builder's view of units and the hive: which files ship, which modules they ask for,
// and whether they are valid. This is the seam to the core parsers (peinit/core/units.h,
// hive.h): the builder must accept exactly what peinit accepts at boot.

#include <string>
#include <vector>

#include "initramfs/image_definition.h"
#include "initramfs/kernel_modules.h"
#include "peinit/core/result.h"

namespace peinit::image {

struct UnitFile {
    std::string name;       // file name, shipped as /etc/peinit/units/NAME
    std::string host_path;
};

struct UnitScan {
    std::vector<UnitFile> files;          // sorted by name
    std::vector<ModuleRequest> modules;   // every module the units load at boot
};

// Lists and validates the unit files of every directory; all errors are reported at once,
// each as "FILE:LINE: message".
Result<UnitScan> ScanUnits(const std::vector<Located<std::string>>& dirs);

// Validates the hive file ("FILE:LINE: message" on error).
Result<void> ValidateHive(const std::string& path);

}  // namespace peinit::image
