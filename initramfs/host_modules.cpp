#include "initramfs/host_modules.h"

#include <algorithm>
#include <fstream>
#include <set>

#include "peinit/core/module_policy.h"
#include "peinit/sys/kmod.h"
#include "peinit/sys/package_format.h"

namespace peinit::image {

namespace {

// Adds `names` under `origin`, each once per origin.
void AddWants(ModeWants& out, std::set<std::pair<std::string, std::string>>& seen,
              const std::vector<std::string>& names, const std::string& origin) {
    for (const auto& n : names)
        if (seen.emplace(n, origin).second) out.wants.push_back({n, origin, "", false});
}

}  // namespace

Result<ModeWants> HostModuleWants(const HostScan& scan, ModuleDb& db, const std::string& kver) {
    ModeWants out;
    std::set<std::pair<std::string, std::string>> seen;
    for (const HostNeed& need : scan.needs) {
        const std::string prefix = "host: " + need.subject + ": ";
        for (const HostModuleName& m : need.modules) {
            std::vector<std::string> names;
            if (m.file_system) names = PEINIT_TRY(db.Lookup("fs-" + m.name));
            if (names.empty()) names = PEINIT_TRY(db.Lookup(m.name));
            if (names.empty()) {
                out.warnings.push_back(prefix + m.why + ": kernel " + kver + " has no module \"" +
                                       m.name + "\" (left out)");
                continue;
            }
            AddWants(out, seen, names, prefix + m.why);
        }
        for (const HostDevice& d : need.devices) {
            std::vector<std::string> names;
            std::string rule;
            const std::string driver = !d.driver_module.empty() ? d.driver_module : d.driver;
            if (!driver.empty()) {
                names = PEINIT_TRY(db.Lookup(driver));
                rule = d.name + " driver";
            }
            if (names.empty() && !d.modalias.empty()) {
                names = PEINIT_TRY(db.Lookup(d.modalias));
                rule = d.name + " modalias " + d.modalias;
            }
            if (names.empty()) {
                if (!d.driver_module.empty())
                    out.warnings.push_back(
                        prefix + d.syspath + " is driven by module " + d.driver_module +
                        " on this machine, but kernel " + kver + " has no module or alias for it" +
                        (d.modalias.empty() ? std::string() : " (modalias " + d.modalias + ")") +
                        " (left out)");
                continue;
            }
            AddWants(out, seen, names, prefix + rule);
        }
    }
    for (const auto& n : scan.notes) out.warnings.push_back("host: " + n);
    return out;
}

const std::vector<GenericDir> kGenericDirs = {
    {"kernel/drivers/ata/", "storage controller (ATA/SATA)"},
    {"kernel/drivers/scsi/", "storage controller (SCSI/SAS)"},
    {"kernel/drivers/message/fusion/", "storage controller (LSI Fusion MPT)"},
    {"kernel/drivers/nvme/host/", "storage controller (NVMe)"},
    {"kernel/drivers/block/", "block device driver"},
    {"kernel/drivers/md/", "device mapper and MD RAID"},
    {"kernel/drivers/mmc/", "MMC/SD storage"},
    {"kernel/drivers/memstick/", "Memory Stick storage"},
    {"kernel/drivers/virtio/", "virtio transport"},
    {"kernel/drivers/hv/", "Hyper-V bus"},
    {"kernel/drivers/pci/controller/", "PCI host bridge (VMD, Hyper-V)"},
    {"kernel/drivers/usb/storage/", "USB storage"},
    {"kernel/drivers/usb/host/", "USB host controller"},
    {"kernel/drivers/hid/usbhid/", "USB keyboard"},
    {"kernel/drivers/hid/hid-generic.", "USB keyboard"},
    {"kernel/drivers/input/keyboard/", "keyboard"},
    {"kernel/drivers/input/serio/", "keyboard controller"},
    {"kernel/fs/", "file system"},
    {"kernel/crypto/", "crypto (dm-crypt ciphers)"},
    {"kernel/arch/x86/crypto/", "crypto (dm-crypt ciphers)"},
};

// Modules that exist for testing and fail or misbehave by design.
const std::vector<std::string> kGenericExcluded = {"scsi_debug", "null_blk", "tcrypt", "dm_flakey",
                                                   "dm_dust"};

Result<std::vector<ModuleWant>> GenericModuleWants(const KernelTree& kernel) {
    const std::string dep = JoinPath(kernel.modules_dir, "modules.dep");
    std::ifstream in(dep);
    if (!in) return ErrnoErr(dep);
    std::vector<ModuleWant> out;
    std::string line;
    while (std::getline(in, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        const std::string path = line.substr(0, colon);
        auto dir = std::find_if(kGenericDirs.begin(), kGenericDirs.end(), [&](const GenericDir& d) {
            return path.compare(0, std::char_traits<char>::length(d.prefix), d.prefix) == 0;
        });
        if (dir == kGenericDirs.end()) continue;
        const std::string name = ModuleNameOfPath(path);
        if (name.empty() || name.starts_with("test_") || name.ends_with("_test") ||
            std::find(kGenericExcluded.begin(), kGenericExcluded.end(), name) !=
                kGenericExcluded.end())
            continue;
        out.push_back({name, std::string("generic: ") + dir->what, "", false});
    }
    if (in.bad()) return ErrnoErr(dep);
    std::sort(out.begin(), out.end(),
              [](const ModuleWant& a, const ModuleWant& b) { return a.name < b.name; });
    return out;
}

GeneratedUnit HostModulesUnit(const ModeWants& wants) {
    std::set<std::string> names;
    for (const auto& w : wants.wants) names.insert(w.name);
    std::string text =
        "# Generated by peinit-image for modules_from = \"host\": the drivers of this machine's\n"
        "# root, console and keyboard (`peinit-image plan` says which rule chose each).\n"
        "description = \"Host-only drivers (modules_from = host)\"\n";
    for (const auto& n : names)
        text += "\n[[module]]\nname = \"" + n + "\"\nif_hardware_present = true\n";
    return {"host-modules.toml", text};
}

Result<ModeWants> ModeModuleWants(ModuleMode mode, const KernelTree& kernel,
                                  const std::string& host_root) {
    ModeWants out;
    if (mode == ModuleMode::kGeneric) {
        out.wants = PEINIT_TRY(GenericModuleWants(kernel));
    } else if (mode == ModuleMode::kHost) {
        HostScan scan = PEINIT_TRY(ScanHost(host_root));
        auto db = KmodDb::Open(kernel.module_root, kernel.kver);
        if (!db) return db.error().Context("kernel " + kernel.kver + ": ");
        out = PEINIT_TRY(HostModuleWants(scan, **db, kernel.kver));
    }
    return out;
}

}  // namespace peinit::image
