// Issue 22, the image builder on a real machine: an installed kernel named by its release
// (ROOT/boot/vmlinuz-KVER, ROOT/lib/modules/KVER), the host-only module set computed from a
// (fake) sysfs tree and mount table, the generic module set, the plan naming the rule behind
// each module, and the provenance record. Resolution runs against the Debian kernel fixture
// (kernel/debian-kernel), as a target kernel other than the running one.

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "image_tool.h"
#include "initramfs/host_modules.h"
#include "initramfs/image_builder.h"
#include "initramfs/image_definition.h"
#include "initramfs/image_tree.h"
#include "peinit/record/image.h"
#include "peinit/sys/host_devices.h"
#include "peinit/sys/kmod.h"
#include "peinit/sys/package.h"
#include "peinit/sys/package_crypto.h"

namespace peinit::image {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void Write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
}

// A fake machine: ROOT/proc/self/mountinfo and a sysfs tree whose links are relative, as the
// kernel's are (/sys/dev/block/MAJ:MIN -> ../../devices/...).
class FakeMachine {
  public:
    explicit FakeMachine(fs::path root) : root_(std::move(root)) {}

    void Link(const std::string& link, const std::string& target) {
        fs::path l = root_ / link.substr(1), t = root_ / target.substr(1);
        fs::create_directories(l.parent_path());
        fs::create_directories(t);
        fs::create_symlink(fs::relative(t, l.parent_path()), l);
    }
    void File(const std::string& path, const std::string& text) {
        Write(root_ / path.substr(1), text + "\n");
    }
    // The root mount: device MAJ:MIN, its type and source.
    void Root(const std::string& majmin, const std::string& type, const std::string& source) {
        File("/proc/self/mountinfo",
             "21 26 0:20 / /proc rw,relatime - proc proc rw\n"
             "26 1 " +
                 majmin + " / / rw,relatime - " + type + " " + source +
                 " rw\n"
                 "22 26 0:21 / /sys rw,relatime - sysfs sysfs rw");
    }
    // A device with a driver of `bus` (its module: "" when built in) and a modalias.
    void Device(const std::string& path, const std::string& bus, const std::string& driver,
                const std::string& module, const std::string& modalias) {
        fs::create_directories(root_ / path.substr(1));
        if (!driver.empty()) {
            const std::string drv = "/sys/bus/" + bus + "/drivers/" + driver;
            if (!module.empty() && !fs::exists(root_ / drv.substr(1) / "module"))
                Link(drv + "/module", "/sys/module/" + module);
            if (!fs::is_symlink(root_ / path.substr(1) / "driver")) Link(path + "/driver", drv);
        }
        if (!modalias.empty()) File(path + "/modalias", modalias);
    }
    // A block device (a disk or partition directory under some device) by MAJ:MIN.
    void Block(const std::string& path, const std::string& majmin) {
        fs::create_directories(root_ / path.substr(1));
        Link("/sys/dev/block/" + majmin, path);
        Link("/sys/class/block/" + fs::path(path).filename().string(), path);
    }
    const fs::path& root() const { return root_; }

  private:
    fs::path root_;
};

constexpr const char* kVirtioPci = "/sys/devices/pci0000:00/0000:00:04.0";
constexpr const char* kAhciPci = "/sys/devices/pci0000:00/0000:00:17.0";

class ImageHostTest : public ::testing::Test {
  protected:
    void SetUp() override {
        kernel_dir_ = PEINIT_DEBIAN_KERNEL_DIR;
        if (kernel_dir_.empty() || !fs::exists(kernel_dir_ + "/kver"))
            GTEST_SKIP() << "no Debian kernel fixture (run kernel/debian-kernel; tests/run does)";
        char tmpl[] = "/tmp/image-host-test.XXXXXX";
        ASSERT_NE(::mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
        kver_ = ReadAll(kernel_dir_ + "/kver");
        while (!kver_.empty() && kver_.back() == '\n') kver_.pop_back();
        machine_ = std::make_unique<FakeMachine>(dir_ / "host");
        auto db = KmodDb::Open(kernel_dir_, kver_);
        ASSERT_TRUE(db) << db.error().message();
        db_ = std::move(*db);
    }
    void TearDown() override {
        std::error_code ec;
        if (!dir_.empty()) fs::remove_all(dir_, ec);
    }

    // The virtio disk of a QEMU guest: virtio_pci on the PCI function, virtio_blk on virtio1.
    std::string VirtioDisk() {
        std::string pci = kVirtioPci;
        machine_->Device(pci, "pci", "virtio-pci", "virtio_pci",
                         "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00");
        machine_->Device(pci + "/virtio1", "virtio", "virtio_blk", "virtio_blk",
                         "virtio:d00000002v00001AF4");
        return pci + "/virtio1/block/vda";
    }
    // An AHCI controller with one SATA disk sdX on port N.
    std::string SataDisk(const std::string& name, int port) {
        std::string pci = kAhciPci;
        machine_->Device(pci, "pci", "ahci", "ahci",
                         "pci:v00008086d0000A352sv00001028sd00000998bc01sc06i01");
        std::string n = std::to_string(port);
        std::string sdev = pci + "/ata" + n + "/host" + n + "/target" + n + ":0:0/" + n + ":0:0:0";
        machine_->Device(sdev, "scsi", "sd", "sd_mod", "scsi:t-0x00");
        return sdev + "/block/" + name;
    }

    // The host wants, resolved against the Debian kernel: module name -> its origins.
    std::map<std::string, std::vector<std::string>> Wants(ModeWants* out = nullptr) {
        auto scan = ScanHost(machine_->root());
        EXPECT_TRUE(scan) << scan.error().message();
        if (!scan) return {};
        auto wants = HostModuleWants(*scan, *db_, kver_);
        EXPECT_TRUE(wants) << wants.error().message();
        if (!wants) return {};
        std::map<std::string, std::vector<std::string>> by_name;
        for (const auto& w : wants->wants) by_name[w.name].push_back(w.origin);
        if (out != nullptr) *out = *wants;
        return by_name;
    }

    // Resolves `wants` to the closure's module names.
    std::set<std::string> Closure(const std::vector<ModuleWant>& wants) {
        auto tree = OpenKernelTree(kernel_dir_);
        EXPECT_TRUE(tree) << tree.error().message();
        auto closure = ResolveModuleClosure(*tree, wants);
        EXPECT_TRUE(closure) << closure.error().message();
        std::set<std::string> out;
        if (closure)
            for (const auto& f : closure->files) out.insert(f.name);
        return out;
    }

    std::string kernel_dir_, kver_;
    fs::path dir_;
    std::unique_ptr<FakeMachine> machine_;
    std::unique_ptr<KmodDb> db_;
};

TEST(HostDevices, KeyboardBitmap) {
    // An AT keyboard's capabilities/key (bits 1-31 set in the lowest word).
    EXPECT_TRUE(IsKeyboardKeyBitmap("402000000 3803078f800d001 feffffdfffefffff fffffffffffffffe"));
    // A power button (KEY_POWER only) and a mouse (BTN_LEFT ...).
    EXPECT_FALSE(IsKeyboardKeyBitmap("10000000000000 0"));
    EXPECT_FALSE(IsKeyboardKeyBitmap("70000 0 0 0 0"));
    EXPECT_FALSE(IsKeyboardKeyBitmap(""));
    EXPECT_FALSE(IsKeyboardKeyBitmap("zz"));
}

TEST_F(ImageHostTest, VirtioPartitionConsoleAndKeyboards) {
    std::string vda = VirtioDisk();
    machine_->Block(vda, "254:0");
    machine_->Block(vda + "/vda1", "254:1");
    machine_->File(vda + "/vda1/partition", "1");
    machine_->Root("254:1", "ext4", "/dev/vda1");
    // The console on a PNP serial port (built-in driver: nothing to ship, nothing to warn).
    machine_->Device("/sys/devices/pnp0/00:04", "pnp", "serial", "", "");
    machine_->Link("/sys/class/tty/ttyS0", "/sys/devices/pnp0/00:04/tty/ttyS0");
    machine_->Link("/sys/devices/pnp0/00:04/tty/ttyS0/device", "/sys/devices/pnp0/00:04");
    machine_->File("/sys/class/tty/console/active", "tty0 ttyS0");
    // A USB keyboard behind xHCI, and a mouse that is not a keyboard.
    std::string xhci = "/sys/devices/pci0000:00/0000:00:14.0";
    machine_->Device(xhci, "pci", "xhci_hcd", "xhci_pci",
                     "pci:v00008086d0000A36Dsv00001028sd00000998bc0Csc03i30");
    machine_->Device(xhci + "/usb1", "usb", "usb", "usbcore", "");
    machine_->Device(xhci + "/usb1/1-1", "usb", "usb", "usbcore", "");
    std::string intf = xhci + "/usb1/1-1/1-1:1.0";
    machine_->Device(intf, "usb", "usbhid", "usbhid",
                     "usb:v046DpC31Cd6400dc00dsc00dp00ic03isc01ip01in00");
    std::string hid = intf + "/0003:046D:C31C.0001";
    machine_->Device(hid, "hid", "hid-generic", "hid_generic", "hid:b0003g0001v0000046Dp0000C31C");
    machine_->Link("/sys/class/input/input3", hid + "/input/input3");
    machine_->File(hid + "/input/input3/capabilities/key",
                   "1000000000007 ff9f207ac14057ff febeffdfffefffff fffffffffffffffe");
    machine_->File(hid + "/input/input3/name", "Logitech USB Keyboard");
    machine_->File(hid + "/input/input3/modalias", "input:b0003v046DpC31Ce0110-e0,1,4,11,14,k71");
    std::string mouse = intf + "/0003:046D:C077.0002";
    machine_->Device(mouse, "hid", "hid-generic", "hid_generic",
                     "hid:b0003g0001v0000046Dp0000C077");
    machine_->Link("/sys/class/input/input4", mouse + "/input/input4");
    machine_->File(mouse + "/input/input4/capabilities/key", "1f0000 0 0 0 0");

    ModeWants mode;
    auto wants = Wants(&mode);
    ASSERT_TRUE(wants.count("virtio_blk")) << ::testing::PrintToString(wants);
    EXPECT_EQ(wants["virtio_blk"],
              std::vector<std::string>{"host: root / on vda1 (ext4): virtio1 driver"});
    EXPECT_EQ(wants["virtio_pci"],
              std::vector<std::string>{"host: root / on vda1 (ext4): 0000:00:04.0 driver"});
    EXPECT_EQ(wants["ext4"],
              std::vector<std::string>{"host: root / on vda1 (ext4): root file system type ext4"});
    EXPECT_EQ(wants["xhci_pci"], std::vector<std::string>{
                                     "host: keyboard input3 (Logitech USB Keyboard): 0000:00:14.0 "
                                     "driver"});
    EXPECT_TRUE(wants.count("usbhid"));
    EXPECT_TRUE(wants.count("hid_generic"));
    EXPECT_TRUE(wants.count("usbcore"));
    // The input device's own modalias (input handlers such as evdev) is not followed, and the
    // mouse is not a keyboard.
    EXPECT_FALSE(wants.count("evdev"));
    for (const auto& [name, origins] : wants)
        for (const auto& o : origins) EXPECT_EQ(o.find("input4"), std::string::npos) << o;
    // tty0 has no device: a note; the serial driver is built in: no warning for it.
    ASSERT_EQ(mode.warnings.size(), 1u) << ::testing::PrintToString(mode.warnings);
    EXPECT_NE(mode.warnings[0].find("console tty0 has no device"), std::string::npos);

    // Through the planner: dependencies of the target kernel come along.
    auto closure = Closure(mode.wants);
    for (const char* m : {"virtio_blk", "virtio_pci", "ext4", "jbd2", "mbcache", "xhci_pci",
                          "usbhid", "hid_generic", "hid", "usbcore"})
        EXPECT_TRUE(closure.count(m)) << m;
}

TEST_F(ImageHostTest, NvmeDrive) {
    std::string ctrl = "/sys/devices/pci0000:00/0000:00:1d.0/0000:3d:00.0";
    machine_->Device("/sys/devices/pci0000:00/0000:00:1d.0", "pci", "pcieport", "",
                     "pci:v00008086d0000A330sv00001028sd00000998bc06sc04i00");
    machine_->Device(ctrl, "pci", "nvme", "nvme",
                     "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02");
    std::string ns = ctrl + "/nvme/nvme0/nvme0n1";
    machine_->Block(ns, "259:0");
    machine_->Block(ns + "/nvme0n1p2", "259:2");
    machine_->File(ns + "/nvme0n1p2/partition", "2");
    machine_->Root("259:2", "xfs", "/dev/nvme0n1p2");
    ModeWants mode;
    auto wants = Wants(&mode);
    EXPECT_EQ(wants["nvme"],
              std::vector<std::string>{"host: root / on nvme0n1p2 (xfs): 0000:3d:00.0 driver"});
    EXPECT_EQ(wants["xfs"], std::vector<std::string>{
                                "host: root / on nvme0n1p2 (xfs): root file system type xfs"});
    auto closure = Closure(mode.wants);
    EXPECT_TRUE(closure.count("nvme_core"));
    EXPECT_TRUE(closure.count("xfs"));
}

TEST_F(ImageHostTest, AhciSataDisk) {
    std::string sda = SataDisk("sda", 1);
    machine_->Block(sda, "8:0");
    machine_->Block(sda + "/sda2", "8:2");
    machine_->File(sda + "/sda2/partition", "2");
    machine_->Root("8:2", "ext4", "/dev/sda2");
    ModeWants mode;
    auto wants = Wants(&mode);
    EXPECT_EQ(wants["ahci"],
              std::vector<std::string>{"host: root / on sda2 (ext4): 0000:00:17.0 driver"});
    EXPECT_EQ(wants["sd_mod"],
              std::vector<std::string>{"host: root / on sda2 (ext4): 1:0:0:0 driver"});
    EXPECT_TRUE(wants.count("ext4"));
    auto closure = Closure(mode.wants);
    EXPECT_TRUE(closure.count("libahci"));
    EXPECT_TRUE(closure.count("libata"));
    EXPECT_TRUE(closure.count("scsi_mod"));
}

TEST_F(ImageHostTest, DmCryptOnAPartition) {
    std::string vda = VirtioDisk();
    machine_->Block(vda, "254:0");
    machine_->Block(vda + "/vda2", "254:2");
    machine_->File(vda + "/vda2/partition", "2");
    machine_->Block("/sys/devices/virtual/block/dm-0", "253:0");
    machine_->File("/sys/devices/virtual/block/dm-0/dm/uuid",
                   "CRYPT-LUKS2-0123456789abcdef0123456789abcdef-root");
    machine_->File("/sys/devices/virtual/block/dm-0/dm/name", "root");
    machine_->Link("/sys/devices/virtual/block/dm-0/slaves/vda2", vda + "/vda2");
    machine_->Root("253:0", "ext4", "/dev/mapper/root");
    auto wants = Wants();
    EXPECT_EQ(wants["dm_mod"],
              std::vector<std::string>{"host: root / on dm-0 (ext4): dm-0: device-mapper"});
    EXPECT_EQ(
        wants["dm_crypt"],
        std::vector<std::string>{"host: root / on dm-0 (ext4): dm-0: device-mapper target (dm/uuid "
                                 "CRYPT-LUKS2-0123456789abcdef0123456789abcdef-root)"});
    // Through the slave to the disk under it.
    EXPECT_EQ(wants["virtio_blk"],
              std::vector<std::string>{"host: root / on dm-0 (ext4): virtio1 driver"});
    EXPECT_TRUE(wants.count("virtio_pci"));
    EXPECT_TRUE(wants.count("ext4"));
}

TEST_F(ImageHostTest, MdRaid1OverTwoDisks) {
    std::string sda = SataDisk("sda", 1), sdb = SataDisk("sdb", 2);
    machine_->Block(sda + "/sda1", "8:1");
    machine_->Block(sdb + "/sdb1", "8:17");
    std::string md = "/sys/devices/virtual/block/md0";
    machine_->Block(md, "9:0");
    machine_->File(md + "/md/level", "raid1");
    machine_->Link(md + "/slaves/sda1", sda + "/sda1");
    machine_->Link(md + "/slaves/sdb1", sdb + "/sdb1");
    machine_->Root("9:0", "ext4", "/dev/md0");
    auto wants = Wants();
    EXPECT_EQ(wants["md_mod"],
              std::vector<std::string>{"host: root / on md0 (ext4): md0: MD RAID"});
    EXPECT_EQ(wants["raid1"],
              std::vector<std::string>{"host: root / on md0 (ext4): md0: MD level raid1"});
    // Both disks' devices, each once per rule.
    EXPECT_EQ(wants["sd_mod"],
              (std::vector<std::string>{"host: root / on md0 (ext4): 1:0:0:0 driver",
                                        "host: root / on md0 (ext4): 2:0:0:0 driver"}));
    EXPECT_EQ(wants["ahci"],
              std::vector<std::string>{"host: root / on md0 (ext4): 0000:00:17.0 driver"});
}

// A device whose driver is a module here but that the target kernel has neither by name nor by
// modalias: a warning naming both, and the rest of the set is still computed (not fatal: the
// device may not be needed to boot, and the plan shows what is missing).
TEST_F(ImageHostTest, DriverTheTargetKernelLacksIsAWarning) {
    std::string vda = VirtioDisk();
    machine_->Block(vda, "254:0");
    machine_->Root("254:0", "ext4", "/dev/vda");
    std::string hba = "/sys/devices/pci0000:00/0000:00:05.0";
    machine_->Device(hba, "pci", "peinit_fake_hba", "peinit_fake_hba",
                     "pci:v0000FFFEd0000FFFEsv0000FFFEsd0000FFFEbcFEscFEiFE");
    machine_->Device(hba + "/host5/target5:0:0/5:0:0:0", "scsi", "sd", "sd_mod", "scsi:t-0x00");
    machine_->Block(hba + "/host5/target5:0:0/5:0:0:0/block/sdz", "65:144");
    // The console's device sits behind that HBA, so its chain goes through it.
    machine_->Link("/sys/class/tty/ttyS9/device", hba + "/host5/target5:0:0/5:0:0:0");
    machine_->File("/sys/class/tty/console/active", "ttyS9");
    ModeWants mode;
    auto wants = Wants(&mode);
    EXPECT_TRUE(wants.count("virtio_blk"));
    EXPECT_TRUE(wants.count("sd_mod"));
    EXPECT_FALSE(wants.count("peinit_fake_hba"));
    ASSERT_EQ(mode.warnings.size(), 1u) << ::testing::PrintToString(mode.warnings);
    EXPECT_EQ(mode.warnings[0],
              "host: console ttyS9: " + std::string(hba.substr(0)) +
                  " is driven by module peinit_fake_hba on this machine, but kernel " + kver_ +
                  " has no module or alias for it (modalias "
                  "pci:v0000FFFEd0000FFFEsv0000FFFEsd0000FFFEbcFEscFEiFE) (left out)");
}

TEST_F(ImageHostTest, NoMountTableIsAnError) {
    fs::create_directories(machine_->root());
    auto scan = ScanHost(machine_->root().string());
    ASSERT_FALSE(scan);
    EXPECT_NE(scan.error().message().find("proc/self/mountinfo"), std::string::npos)
        << scan.error().message();
    machine_->File("/proc/self/mountinfo", "21 26 0:20 / /proc rw - proc proc rw");
    auto no_root = ScanHost(machine_->root().string());
    ASSERT_FALSE(no_root);
    EXPECT_NE(no_root.error().message().find("no file system mounted on /"), std::string::npos);
}

TEST_F(ImageHostTest, GenericModeStorageAndFileSystemsOnly) {
    auto tree = OpenKernelTree(kernel_dir_);
    ASSERT_TRUE(tree) << tree.error().message();
    auto wants = GenericModuleWants(*tree);
    ASSERT_TRUE(wants) << wants.error().message();
    std::map<std::string, std::string> by_name;
    for (const auto& w : *wants) by_name[w.name] = w.origin;
    EXPECT_EQ(by_name["ahci"], "generic: storage controller (ATA/SATA)");
    EXPECT_EQ(by_name["nvme"], "generic: storage controller (NVMe)");
    EXPECT_EQ(by_name["virtio_blk"], "generic: block device driver");
    EXPECT_EQ(by_name["ext4"], "generic: file system");
    EXPECT_EQ(by_name["xfs"], "generic: file system");
    EXPECT_EQ(by_name["dm_crypt"], "generic: device mapper and MD RAID");
    EXPECT_EQ(by_name["usb_storage"], "generic: USB storage");
    EXPECT_TRUE(by_name.count("virtio_pci"));
    EXPECT_TRUE(by_name.count("xhci_pci"));
    EXPECT_TRUE(by_name.count("usbhid"));
    // No sound or network driver, no test module.
    for (const char* out :
         {"snd_hda_intel", "e1000e", "virtio_net", "bridge", "scsi_debug", "tcrypt", "null_blk"})
        EXPECT_FALSE(by_name.count(out)) << out;
}

// An installed kernel by release under a system root, with the layout of /boot and
// /lib/modules (here: links to the Debian fixture's files).
class InstalledKernelTest : public ImageHostTest {
  protected:
    void SetUp() override {
        ImageHostTest::SetUp();
        if (IsSkipped()) return;
        sysroot_ = dir_ / "sysroot";
        fs::create_directories(sysroot_ / "boot");
        fs::create_directories(sysroot_ / "lib/modules");
        fs::create_symlink(fs::path(kernel_dir_) / "lib/modules" / kver_,
                           sysroot_ / "lib/modules" / kver_);
        fs::create_symlink(fs::path(kernel_dir_) / "boot" / ("vmlinuz-" + kver_),
                           sysroot_ / "boot" / ("vmlinuz-" + kver_));
        fs::create_symlink(fs::path(kernel_dir_) / "boot" / ("config-" + kver_),
                           sysroot_ / "boot" / ("config-" + kver_));
        img_ = dir_ / "img";
        fs::create_directories(img_ / "units");
        Write(img_ / "units/disk.toml", "[[module]]\nname = \"virtio_blk\"\n");
    }
    BuildOptions Options() {
        BuildOptions o;
        o.kernel_dir = sysroot_.string();
        o.binaries = {{"/init", "/bin/true", true}};
        o.key_dir = (dir_ / "keys").string();
        o.host_root = machine_->root().string();
        return o;
    }
    ImageDefinition Define(const std::string& toml) {
        Write(img_ / "image.toml", toml);
        auto def = LoadImageDefinition(img_.string());
        EXPECT_TRUE(def) << def.error().message();
        return def ? *def : ImageDefinition{};
    }
    fs::path sysroot_, img_;
};

TEST_F(InstalledKernelTest, KernelByReleaseUnderASystemRoot) {
    ImageDefinition def = Define("kernel = \"" + kver_ + "\"\nunits = [\"units\"]\n");
    BuildOptions opts = Options();
    // A trailing slash or a doubled one makes no "//lib" path (issue 22: `--kernel-dir /`).
    opts.kernel_dir = sysroot_.string() + "//";
    auto c = ComposeImage(def, opts);
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->kernel.kver, kver_);
    EXPECT_EQ(c->kernel.modules_dir, (sysroot_ / "lib/modules" / kver_).string());
    EXPECT_EQ(c->kernel.image, (sysroot_ / "boot" / ("vmlinuz-" + kver_)).string());
    EXPECT_EQ(c->kernel.config, (sysroot_ / "boot" / ("config-" + kver_)).string());
    EXPECT_EQ(KernelConfigValue(c->kernel, "CONFIG_RD_ZSTD"), "y");
    EXPECT_NE(std::find(c->modules.begin(), c->modules.end(), "virtio_blk"), c->modules.end());
    // The provenance record.
    const Entry* info = c->tree.Find("/etc/peinit/image.json");
    ASSERT_NE(info, nullptr);
    auto parsed = ImageInfo::FromJson(info->data, "image.json");
    ASSERT_TRUE(parsed) << parsed.error().message();
    EXPECT_EQ(parsed->kernel_release, kver_);
    EXPECT_EQ(parsed->module_mode, "units");
    EXPECT_EQ(parsed->key_fingerprint, c->signer);
    EXPECT_EQ(parsed->key_fingerprint.size(), 64u);
    EXPECT_EQ(parsed->built, "1970-01-01T00:00:00Z");
    EXPECT_EQ(parsed->generator.rfind("peinit-image ", 0), 0u);
}

// The installed kernel's config decides which compressions its initramfs may use.
TEST_F(InstalledKernelTest, CompressionTheKernelCannotUnpackIsAnError) {
    ImageDefinition def = Define("kernel = \"" + kver_ + "\"\nunits = [\"units\"]\n");
    const fs::path config = sysroot_ / "boot" / ("config-" + kver_);
    fs::remove(config);
    Write(config, "CONFIG_RD_GZIP=y\n# CONFIG_RD_ZSTD is not set\n");
    const std::string out = (dir_ / "x.cpio").string();
    auto zstd = BuildImage(def, Options(), Compression::kZstd, out);
    ASSERT_FALSE(zstd);
    EXPECT_EQ(zstd.error().message(), config.string() + ": kernel " + kver_ +
                                          " cannot unpack a zstd initramfs (CONFIG_RD_ZSTD is "
                                          "not set); use compression = \"none\" or one it has");
    EXPECT_FALSE(fs::exists(out));
    auto gzip = BuildImage(def, Options(), Compression::kGzip, out);
    EXPECT_TRUE(gzip) << gzip.error().message();
}

TEST_F(InstalledKernelTest, JoinPathNormalises) {
    EXPECT_EQ(JoinPath("/", "lib/modules"), "/lib/modules");
    EXPECT_EQ(JoinPath("//", "/lib/modules/"), "/lib/modules");
    EXPECT_EQ(JoinPath("/x/", "./lib//modules"), "/x/lib/modules");
    // `--kernel-dir /` (issue 22: "resolves outside //lib/modules/..."): whatever this machine
    // has installed, no path of the tree starts with "//".
    auto root = OpenKernelTree("/");
    if (root) {
        EXPECT_EQ(root->modules_dir.rfind("/lib/modules/", 0), 0u) << root->modules_dir;
        EXPECT_EQ(root->module_root, "/");
    } else {
        EXPECT_EQ(root.error().message().find("//"), std::string::npos) << root.error().message();
    }
}

TEST_F(InstalledKernelTest, KverOverridesTheDefinitionsRelease) {
    // kernel = "running" on this machine names whatever runs; --kver names the target.
    ImageDefinition def = Define("kernel = \"running\"\nunits = [\"units\"]\n");
    BuildOptions opts = Options();
    opts.kver = kver_;
    auto c = ComposeImage(def, opts);
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->kernel.kver, kver_);
    ImageDefinition other = Define("kernel = \"6.1.0-1-amd64\"\nunits = [\"units\"]\n");
    auto overridden = ComposeImage(other, opts);
    ASSERT_TRUE(overridden) << overridden.error().message();
    EXPECT_EQ(overridden->kernel.kver, kver_);
}

TEST_F(InstalledKernelTest, ReleaseNotInstalledNamesWhatIs) {
    ImageDefinition def = Define("\nkernel = \"6.1.0-99-amd64\"\nunits = [\"units\"]\n");
    auto c = ComposeImage(def, Options());
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message().find((img_ / "image.toml").string() +
                                       ":2: kernel \"6.1.0-99-amd64\": kernel "
                                       "6.1.0-99-amd64 is not installed in " +
                                       sysroot_.string() + ": " +
                                       (sysroot_ / "lib/modules/6.1.0-99-amd64").string() +
                                       " does not exist (installed: " + kver_ + ")"),
              std::string::npos)
        << c.error().message();
}

TEST_F(InstalledKernelTest, KverIsRefusedForFixtureKernels) {
    ImageDefinition def = Define("kernel = \"debian\"\nunits = [\"units\"]\n");
    BuildOptions opts = Options();
    opts.kernel_dir = kernel_dir_;
    opts.kver = kver_;
    auto c = ComposeImage(def, opts);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().message().find(":1: --kver " + kver_ + " needs kernel = \"RELEASE\""),
              std::string::npos)
        << c.error().message();
}

TEST_F(InstalledKernelTest, HostModeBuildShipsTheDetectedSet) {
    std::string vda = VirtioDisk();
    machine_->Block(vda, "254:0");
    machine_->Root("254:0", "ext4", "/dev/vda");
    ImageDefinition def =
        Define("kernel = \"" + kver_ + "\"\nmodules_from = \"host\"\nunits = [\"units\"]\n");
    auto c = ComposeImage(def, Options());
    ASSERT_TRUE(c) << c.error().message();
    std::map<std::string, std::vector<std::string>> chosen;
    for (const auto& m : c->module_set) chosen[m.name] = m.chosen_by;
    EXPECT_EQ(chosen["virtio_blk"],
              (std::vector<std::string>{(img_ / "units/disk.toml").string() + ":1",
                                        "host: root / on vda (ext4): virtio1 driver"}));
    EXPECT_EQ(chosen["ext4"],
              std::vector<std::string>{"host: root / on vda (ext4): root file system type ext4"});
    EXPECT_EQ(chosen["jbd2"], std::vector<std::string>{"dependency of ext4"});
    auto info = ImageInfo::FromJson(c->tree.Find("/etc/peinit/image.json")->data, "image.json");
    ASSERT_TRUE(info);
    EXPECT_EQ(info->module_mode, "host");
}

// R-30 on an installed kernel: a distribution that compresses its modules (dummy.ko.xz here,
// in a copy of the Debian tree re-indexed by depmod) gets them packed as they are, and the
// package verifies.
TEST_F(InstalledKernelTest, CompressedModulesArePackedAsInstalled) {
    fs::path mods = sysroot_ / "lib/modules" / kver_;
    fs::remove(mods);
    const fs::path fixture = fs::path(kernel_dir_) / "lib/modules" / kver_;
    ASSERT_EQ(std::system(("cp -al '" + fixture.string() + "' '" + mods.string() + "'").c_str()),
              0);
    // The indexes are copies (depmod below rewrites them), the modules hard links.
    for (const auto& e : fs::directory_iterator(mods)) {
        if (!e.is_regular_file()) continue;
        fs::remove(e.path());
        fs::copy_file(fixture / e.path().filename(), e.path());
    }
    const std::string ko = "kernel/drivers/net/dummy.ko";
    fs::remove(mods / ko);
    ASSERT_EQ(
        std::system(("xz -c '" + (fixture / ko).string() + "' > '" + (mods / ko).string() + ".xz'")
                        .c_str()),
        0);
    ASSERT_EQ(std::system(("depmod -b '" + sysroot_.string() + "' " + kver_).c_str()), 0);
    ImageDefinition def =
        Define("kernel = \"" + kver_ + "\"\nunits = [\"units\"]\nmodules = [\"dummy\"]\n");
    auto c = ComposeImage(def, Options());
    ASSERT_TRUE(c) << c.error().message();
    auto it = std::find_if(c->module_set.begin(), c->module_set.end(),
                           [](const ModuleFile& m) { return m.name == "dummy"; });
    ASSERT_NE(it, c->module_set.end());
    EXPECT_EQ(it->rel_path, ko + ".xz");
    const Entry* pkg = c->tree.Find("/usr/lib/peinit/packages/image.pkg");
    ASSERT_NE(pkg, nullptr);
    std::vector<std::byte> bytes(pkg->data.size());
    std::memcpy(bytes.data(), pkg->data.data(), bytes.size());
    auto pub = ParsePublicKeyPem(c->tree.Find("/etc/peinit/keys/image.pub")->data);
    ASSERT_TRUE(pub);
    TrustStore trust;
    trust.Add(*pub);
    auto verified = VerifyPackage(bytes, trust, kver_);
    ASSERT_TRUE(verified) << verified.error().message();
    const std::string xz = ReadAll((mods / ko).string() + ".xz");
    bool found = false;
    for (const auto& f : verified->files()) {
        if (f.path() != "modules/" + ko + ".xz") continue;
        found = true;
        ASSERT_EQ(f.bytes().size(), xz.size());
        EXPECT_EQ(std::memcmp(f.bytes().data(), xz.data(), xz.size()), 0);
        EXPECT_EQ(f.module_name(), "dummy");
    }
    EXPECT_TRUE(found);
}

// `peinit-image plan` prints the image's module set with the rule that chose each module.
TEST_F(InstalledKernelTest, ToolPlanNamesTheRuleOfEachModule) {
    std::string vda = VirtioDisk();
    machine_->Block(vda, "254:0");
    machine_->Block(vda + "/vda1", "254:1");
    machine_->Root("254:1", "ext4", "/dev/vda1");
    Write(img_ / "units/net.toml", "description = \"net\"\n\n[[module]]\nname = \"bridge\"\n");
    Define("kernel = \"" + kver_ + "\"\nmodules_from = \"host\"\nunits = [\"units\"]\n");
    ToolRun r = Tool("plan '" + img_.string() + "' --sysroot '" + sysroot_.string() +
                     "' --host-root '" + machine_->root().string() + "'");
    EXPECT_EQ(r.status, 0) << r.output;
    auto line_with = [&](const std::string& module, const std::string& rule) {
        std::istringstream in(r.output);
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("  " + module + " ", 0) == 0 && line.find(rule) != std::string::npos)
                return true;
        return false;
    };
    EXPECT_TRUE(line_with("virtio_blk", "host: root / on vda1 (ext4): virtio1 driver")) << r.output;
    EXPECT_TRUE(line_with("ext4", "host: root / on vda1 (ext4): root file system type ext4"))
        << r.output;
    EXPECT_TRUE(line_with("bridge", (img_ / "units/net.toml").string() + ":3")) << r.output;
    EXPECT_TRUE(line_with("stp", "dependency of bridge")) << r.output;
    // `--kver` for an installed kernel that is not there.
    ToolRun missing =
        Tool("plan '" + img_.string() + "' --sysroot '" + sysroot_.string() +
             "' --kver 6.1.0-99-amd64 --host-root '" + machine_->root().string() + "'");
    EXPECT_EQ(missing.status, 1) << missing.output;
    EXPECT_NE(missing.output.find("kernel 6.1.0-99-amd64 is not installed"), std::string::npos)
        << missing.output;
}

TEST_F(InstalledKernelTest, ToolGenericPlanNamesGenericRules) {
    Define("kernel = \"" + kver_ + "\"\nmodules_from = \"generic\"\nunits = [\"units\"]\n");
    ToolRun r = Tool("plan '" + img_.string() + "' --kernel-dir '" + sysroot_.string() + "/'");
    EXPECT_EQ(r.status, 0) << r.output.substr(0, 4000);
    EXPECT_NE(r.output.find("  ahci "), std::string::npos);
    EXPECT_NE(r.output.find("generic: storage controller (ATA/SATA)"), std::string::npos);
    EXPECT_EQ(r.output.find("  e1000e "), std::string::npos);
}

// `build --key-dir DIR`: the key is generated there on first use (DIR 0700, key 0600, parents
// 0755), reused by the next build, and a directory or key group or others can access is
// refused naming it.
TEST_F(InstalledKernelTest, ToolKeyDirGeneratesOnFirstUseAndRefusesOpenOnes) {
    Define("kernel = \"" + kver_ + "\"\nunits = [\"units\"]\n");
    const fs::path keys = dir_ / "etc/peinit/keys/private";
    auto build = [&](const std::string& out) {
        return Tool("build '" + img_.string() + "' -o '" + (dir_ / out).string() +
                    "' --kernel-dir '" + sysroot_.string() + "' --key-dir '" + keys.string() + "'");
    };
    ToolRun first = build("a.cpio");
    ASSERT_EQ(first.status, 0) << first.output;
    EXPECT_EQ(fs::status(keys).permissions() & fs::perms::all, fs::perms::owner_all);
    EXPECT_EQ(fs::status(dir_ / "etc/peinit").permissions() & fs::perms::all,
              fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                  fs::perms::others_read | fs::perms::others_exec);
    const fs::path key = keys / "image-signing.key";
    EXPECT_EQ(fs::status(key).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
    const std::string pem = ReadAll(key.string());
    ToolRun second = build("b.cpio");
    ASSERT_EQ(second.status, 0) << second.output;
    EXPECT_EQ(ReadAll(key.string()), pem) << "the key is made once";
    EXPECT_EQ(ReadAll((dir_ / "a.cpio").string()), ReadAll((dir_ / "b.cpio").string()));

    fs::permissions(key, fs::perms::group_read, fs::perm_options::add);
    ToolRun open_key = build("c.cpio");
    EXPECT_EQ(open_key.status, 1) << open_key.output;
    EXPECT_NE(open_key.output.find(key.string() + ": private key is accessible by group or others"),
              std::string::npos)
        << open_key.output;
    fs::permissions(key, fs::perms::group_read, fs::perm_options::remove);
    fs::permissions(keys, fs::perms::others_exec, fs::perm_options::add);
    ToolRun open_dir = build("d.cpio");
    EXPECT_EQ(open_dir.status, 1) << open_dir.output;
    EXPECT_NE(open_dir.output.find(keys.string() +
                                   ": key directory is accessible by group or others (mode 0701)"),
              std::string::npos)
        << open_dir.output;
    EXPECT_FALSE(fs::exists(dir_ / "c.cpio"));
    EXPECT_FALSE(fs::exists(dir_ / "d.cpio"));
}

}  // namespace
}  // namespace peinit::image
