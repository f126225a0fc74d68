#pragma once

// The devices present now and their MODALIAS, for hardware coldplug. Works without
// udevd, as libudev's enumeration does: every device under SYSFS/bus/*/devices and
// SYSFS/class/*, each once (the same directory reached twice counts once), with the MODALIAS= line of its uevent file.
//
// Not through libudev: its enumeration builds a full device object for each of the several
// hundred sysfs entries (readlinks, uevent parsing, a udev database lookup), which measured
// 800 ms on the boot's critical path under TCG for 56 matching devices; a stat and a read of
// each device's uevent directly finds the same set in a fraction of that (the CPUs included, whose MODALIAS is in
// uevent only, not in a `modalias` attribute).

#include <string>
#include <vector>

#include "peinit/core/device_modalias.h"
#include "peinit/core/result.h"

namespace peinit {

// Every device under `sysfs` with a MODALIAS, sorted by syspath, each device once. An
// unreadable `sysfs` is an error; unreadable devices are skipped.
Result<std::vector<DeviceModalias>> EnumerateModaliases(const std::string& sysfs = "/sys");

}  // namespace peinit
