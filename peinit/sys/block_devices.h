#pragma once

// Block devices as libblkid sees them: what the handoff needs to find the real root by tag
// (root=UUID=..., PARTUUID=, LABEL=, PARTLABEL=) and to know its file system without trying
// every one the kernel has. The udev-less equivalent of /dev/disk/by-*: in the initramfs
// no udev daemon makes those links, so the devices are probed directly.

#include <string>
#include <vector>

#include "peinit/core/result.h"
#include "peinit/core/root_spec.h"

namespace peinit {

struct BlockDevice {
    std::string name;  // kernel name, e.g. "vda1"
    std::string path;  // the device node, e.g. "/dev/vda1" (under the paths' root)
    std::string type;  // file system (blkid TYPE), "" when none was recognised
    std::string uuid, label;
    std::string partuuid, partlabel;  // partition table entry (GPT or MBR), "" when none
    // Another block device is built on this one (SYS/class/block/NAME/holders is not empty:
    // device-mapper, MD): its tags are the upper device's too, and the upper one is the one to
    // use.
    bool held = false;

    // "vda1 (ext4 UUID=... LABEL=...)" for messages.
    std::string Describe() const;
    bool Matches(const RootSpec& spec) const;
};

// Every block device listed in SYS/class/block, probed read-only through its node in DEV.
// Devices that cannot be opened or probed are listed with empty fields.
std::vector<BlockDevice> ProbeBlockDevices(const std::string& sys_class_block,
                                           const std::string& dev_dir);

// Probes one device node.
BlockDevice ProbeBlockDevice(const std::string& name, const std::string& path);

// libmount's reading of a mount option string ("ro,noatime,data=ordered"): the MS_* flags and
// the file-system-specific remainder for mount(2)'s data argument. Unknown userspace-only
// options (x-*, defaults, nofail) are dropped as mount(8) drops them.
struct MountOptions {
    unsigned long flags = 0;
    std::string data;
};
Result<MountOptions> ParseMountOptions(const std::string& options);

}  // namespace peinit
