#pragma once

// A device and its MODALIAS: what coldplug and hot-add give drivers to (peinit/sys/udev.h finds
// them in sysfs, peinit/sys/uevent.h in the kernel's uevents).

#include <string>

namespace peinit {

struct DeviceModalias {
    std::string syspath;   // e.g. /sys/devices/pci0000:00/0000:00:02.0/virtio0
    std::string modalias;  // e.g. virtio:d00000001v00001AF4
    bool operator==(const DeviceModalias&) const = default;
};

}  // namespace peinit
