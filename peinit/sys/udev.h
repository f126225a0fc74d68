#pragma once

// libudev, for hardware coldplug: the devices present now and their MODALIAS.
// Works without udevd: libudev reads sysfs (each device's uevent file) directly.

#include <string>
#include <vector>

#include "peinit/core/result.h"

namespace peinit {

struct DeviceModalias {
    std::string syspath;   // e.g. /sys/devices/pci0000:00/0000:00:02.0/virtio0
    std::string modalias;  // e.g. virtio:d00000001v00001AF4
    bool operator==(const DeviceModalias&) const = default;
};

// Every device in sysfs with a MODALIAS property, in libudev's scan order (sorted by syspath),
// each modalias once per device.
Result<std::vector<DeviceModalias>> EnumerateModaliases();

}  // namespace peinit
