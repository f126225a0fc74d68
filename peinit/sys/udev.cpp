#include "peinit/sys/udev.h"

#include <libudev.h>

#include <memory>

namespace peinit {

namespace {

struct UdevDeleter {
    void operator()(udev* u) const noexcept { udev_unref(u); }
};
struct EnumerateDeleter {
    void operator()(udev_enumerate* e) const noexcept { udev_enumerate_unref(e); }
};
struct DeviceDeleter {
    void operator()(udev_device* d) const noexcept { udev_device_unref(d); }
};

}  // namespace

Result<std::vector<DeviceModalias>> EnumerateModaliases() {
    std::unique_ptr<udev, UdevDeleter> ctx(udev_new());
    if (!ctx) return ErrnoErr("udev_new");
    std::unique_ptr<udev_enumerate, EnumerateDeleter> en(udev_enumerate_new(ctx.get()));
    if (!en) return ErrnoErr("udev_enumerate_new");
    if (int r = udev_enumerate_add_match_property(en.get(), "MODALIAS", "*"); r < 0) {
        return ErrnoErr("udev_enumerate_add_match_property", -r);
    }
    if (int r = udev_enumerate_scan_devices(en.get()); r < 0) {
        return ErrnoErr("udev_enumerate_scan_devices", -r);
    }
    std::vector<DeviceModalias> out;
    udev_list_entry* entry = nullptr;
    udev_list_entry_foreach(entry, udev_enumerate_get_list_entry(en.get())) {
        const char* syspath = udev_list_entry_get_name(entry);
        if (syspath == nullptr) continue;
        std::unique_ptr<udev_device, DeviceDeleter> dev(
            udev_device_new_from_syspath(ctx.get(), syspath));
        if (!dev) continue;  // gone since the scan
        const char* alias = udev_device_get_property_value(dev.get(), "MODALIAS");
        if (alias == nullptr || *alias == '\0') continue;
        out.push_back({syspath, alias});
    }
    return out;
}

}  // namespace peinit
