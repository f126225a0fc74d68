#pragma once

// What the running machine needs to boot, read from its mount table and sysfs (the host-only
// module set of `peinit-image`, as dracut --hostonly and booster's host mode compute it):
//
// - the root file system: `/` in ROOT/proc/self/mountinfo (libmount), its type, and its device
//   by major:minor (ROOT/sys/dev/block/MAJ:MIN; a device number without a block device, as
//   btrfs gives, falls back to the mount source /dev/NAME -> ROOT/sys/class/block/NAME);
// - the block device chain under it: the device and every parent directory up to
//   ROOT/sys/devices (a partition's parent is its disk), each with its bound driver (`driver`
//   link), that driver's module (`driver/module` link) and its `modalias`; device-mapper
//   devices (a `dm` directory) add dm_mod and the target by dm/uuid prefix (CRYPT-VERITY- ->
//   dm_verity, CRYPT-INTEGRITY- -> dm_integrity, other CRYPT- -> dm_crypt, mpath- ->
//   dm_multipath, an LVM- device over *_rimage_* sub-volumes -> dm_raid) and continue through
//   `slaves/*`; MD devices (an `md` directory) add md_mod and their personality by md/level
//   (raid0/1/10, raid4/5/6 -> raid456, linear, multipath) and continue through `slaves/*`;
//   loopN, nbdN and zramN add loop, nbd and zram;
// - the console: every name in ROOT/sys/class/tty/console/active whose tty has a `device`;
// - keyboards: ROOT/sys/class/input/input*/ whose capabilities/key has bits 1-31 set (KEY_ESC
//   to KEY_S, udev's ID_INPUT_KEYBOARD test), from the input device's parent up (the input
//   device's own modalias matches input handlers such as evdev, not hardware).
//
// Every path is read under `root` ("/" on a real machine, a fake tree in tests). Nothing here
// knows about kernel modules of the target kernel: resolving names and modaliases is the
// caller's (initramfs/host_modules.h).

#include <string>
#include <vector>

#include "peinit/core/result.h"

namespace peinit {

// One device directory on a chain.
struct HostDevice {
    std::string syspath;        // "/sys/devices/pci0000:00/0000:00:02.0/virtio1" (without root)
    std::string name;           // "virtio1"
    std::string driver;         // the bound driver ("virtio_blk"); "" when none
    std::string driver_module;  // the driver's module ("virtio_blk"); "" when built in or none
    std::string modalias;       // "" when the device has none
};

// A module named by a rule rather than by a device (file system type, dm target, MD level).
struct HostModuleName {
    std::string name;  // module name or alias
    std::string why;   // "root file system type ext4", "dm-0: dm-crypt (dm/uuid CRYPT-LUKS2-...)"
    bool file_system = false;  // a file system type: resolve "fs-TYPE" first, then TYPE
};

// Something the machine needs to boot, and the devices and modules that serve it.
struct HostNeed {
    std::string subject;              // "root / on vda1 (ext4)", "console ttyS0", ...
    std::vector<HostDevice> devices;  // each chain from the device up, in walk order
    std::vector<HostModuleName> modules;
};

struct HostScan {
    std::vector<HostNeed> needs;
    std::vector<std::string> notes;  // what could not be followed (no device for a console ...)
};

// Reads the running machine under `root`. Errors: no mount table, no `/` in it.
Result<HostScan> ScanHost(const std::string& root);

// True when a capabilities/key bitmap (hex words, most significant first, as sysfs prints it)
// has bits 1-31 set: a keyboard.
bool IsKeyboardKeyBitmap(const std::string& bitmap);

}  // namespace peinit
