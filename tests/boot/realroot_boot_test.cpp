// Boot tests of the initramfs role with a real root (R-24, R-25): a minimal Debian 12 with
// systemd (tests/realroot/build) on a virtio disk, found by root=UUID= / PARTUUID= / LABEL=,
// booted under peinit's lock (or with the helper handed over). Each test makes its own disk
// from the cached fixture tree plus a test unit that prints what it saw on the results channel
// (qemu_runner.h) with markers, then powers the VM off from inside systemd.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "image_boot.h"
#include "realroot_disk.h"
#include "tests/json_at.h"

namespace peinit::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUuid = "5eb0c3f6-1c8a-4f0e-9d52-00000000beef";

// The test unit's ExecStart lines: peinitctl status --json as nobody on one channel line
// `STATUS-JSON {...}`, then `systemctl poweroff`.
const char* kStatusAndPoweroff =
    "ExecStart=-/bin/setpriv --reuid=nobody --regid=nogroup --clear-groups /bin/sh -c "
    "'echo \"STATUS-JSON $(/run/peinit/bin/peinitctl status --json | tr -d \"\\\\n\")\"'\n"
    "ExecStart=/bin/systemctl --no-block poweroff\n";

// The first STATUS-JSON line that parses.
std::optional<peinit::testing::TestJson> StatusJson(const ImageBootResult& r) {
    for (const auto& line : r.Results("STATUS-JSON {")) {
        if (auto json = peinit::testing::TestJson::IfParses(line.substr(line.find('{')))) {
            return json;
        }
    }
    return std::nullopt;
}

std::map<std::string, std::string> ModuleStatuses(const peinit::testing::TestJson& status) {
    std::map<std::string, std::string> out;
    for (std::size_t i = 0; i < status.Size("modules.list"); ++i) {
        const std::string at = "modules.list." + std::to_string(i);
        out[status.Str(at + ".name")] = status.Str(at + ".status");
    }
    return out;
}

// A small ext4 disk whose /sbin/init is the static root_init (prints PROBE lines, powers off):
// for boots that only need a root to switch to. `args` go to make-disk.
std::string StaticRootDisk(const fs::path& work, const std::string& name, const std::string& args) {
    fs::path tree = work / (name + "-tree");
    for (const char* dir : {"sbin", "proc", "sys", "dev", "run"}) fs::create_directories(tree / dir);
    fs::copy_file(PEINIT_ROOT_INIT, tree / "sbin/init", fs::copy_options::overwrite_existing);
    std::string disk = (work / (name + ".img")).string();
    std::string log;
    std::string cmd = std::string(PEINIT_SOURCE_DIR) + "/tests/realroot/make-disk --root " +
                      ShellQuote(tree.string()) + " --size 16 --out " + ShellQuote(disk) + " " +
                      args;
    EXPECT_EQ(Sh(cmd, log), 0) << cmd << "\n" << log;
    return disk;
}

class RealRootBoot : public ::testing::Test {
  protected:
    void SetUp() override {
        if (RealRootTree().empty()) GTEST_FAIL() << "PEINIT_REALROOT_DIR is not set";
        work_ = fs::current_path() / "boot-artifacts" /
                ::testing::UnitTest::GetInstance()->current_test_info()->name();
        fs::create_directories(work_);
    }
    fs::path work_;
};

// Patched kernel, root=UUID=, LockAfterBoot=true, default init: peinit loads the root's
// drivers from its signed package, locks, resolves /sbin/init inside the merged-/usr root
// (/sbin -> usr/sbin, init -> /lib/systemd/systemd) and systemd comes up under the lock:
// systemd-modules-load's refusal is visible and does not stop the boot; an unprivileged
// `peinitctl status --json` sees the lock set by PID 1 with trigger registry and every boot-time
// module's outcome; `systemctl poweroff` powers the VM off.
TEST_F(RealRootBoot, SystemdStartsUnderTheLock) {
    Overlay overlay(work_ / "overlay");
    overlay.Unit("peinit-test.service",
                 "ExecStart=-/bin/sh -c 'SYSTEMD_LOG_TARGET=console "
                 "/lib/systemd/systemd-modules-load 2>&1 | sed \"s/^/MODLOAD /\"'\n" +
                     std::string(kStatusAndPoweroff));
    // A real root has its kernel's modules and asks for some at boot: under the lock, refused.
    std::string kver = KernelRelease(KernelDirFor("peinit"));
    overlay.Copy(KernelDirFor("peinit") + "/modroot/lib/modules/" + kver,
                 "/usr/lib/modules/" + kver);
    overlay.Write("/etc/modules-load.d/peinit-test.conf", "dummy\n");
    std::string disk = (work_ / "disk.img").string();
    ASSERT_EQ(MakeDisk(overlay, disk, std::string("--uuid ") + kUuid), "");

    ImageBoot boot;
    boot.name = "realroot-locked";
    boot.image_dir = std::string(PEINIT_SOURCE_DIR) + "/images/realroot";
    boot.append = std::string("root=UUID=") + kUuid + " rw systemd.show_status=error";
    boot.qemu_args = {"-drive", "file=" + disk + ",if=virtio,format=raw"};
    boot.timeout = std::chrono::seconds(800);
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("peinit: lockdown locked=1 mechanism=syscall trigger=registry"))
        << Explain(r);
    EXPECT_TRUE(r.Has(std::string("peinit: handoff: root UUID=") + kUuid + " is vda (ext4"))
        << Explain(r);
    EXPECT_TRUE(r.Has(std::string("peinit: handoff: exec /sbin/init on UUID=") + kUuid))
        << Explain(r);
    EXPECT_TRUE(r.Has("systemd[1]: systemd 252")) << Explain(r);
    // systemd-modules-load was refused by the kernel (at boot, and again from the test unit to
    // see why), and the system came up all the same.
    EXPECT_TRUE(r.Has("Failed to start systemd-modules-load.service")) << Explain(r);
    EXPECT_FALSE(r.Results("MODLOAD Failed to insert module 'dummy': Operation not permitted").empty())
        << Explain(r);
    auto status = StatusJson(r);
    ASSERT_TRUE(status) << Explain(r);
    EXPECT_EQ(status->Bool("lock.locked"), true);
    EXPECT_EQ(status->Str("lock.mechanism"), "syscall");
    EXPECT_EQ(status->Str("lock.trigger"), "registry");
    EXPECT_EQ(status->Int("lock.pid"), 1);
    auto modules = ModuleStatuses(*status);
    for (const char* m : {"virtio_blk", "ext4", "jbd2", "mbcache", "crc16"}) {
        EXPECT_EQ(modules[m], "loaded") << m << "\n" << Explain(r);
    }
    EXPECT_TRUE(r.Has("reboot: Power down")) << Explain(r);
    EXPECT_FALSE(r.Has("Kernel panic")) << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// LockAfterBoot=false, AutoLoadPolicy=allow-list: the real root keeps demand loading through
// the helper PID 1 handed over in /run/peinit (its own copy of the package, keys and indexes):
// socket(AF_PACKET) demand-loads the allow-listed af_packet, socket(AF_ALG) is refused with the
// reason in the kernel log, and `modprobe dummy` of the hive-blacklisted module is refused by
// kmod itself through /run/modprobe.d.
TEST_F(RealRootBoot, AllowListHelperIsHandedOver) {
    Overlay overlay(work_ / "overlay");
    overlay.Copy(PEINIT_POLICY_PROBE, "/usr/local/bin/policy_probe");
    std::string kver = KernelRelease(KernelDirFor("peinit"));
    overlay.Copy(KernelDirFor("peinit") + "/modroot/lib/modules/" + kver,
                 "/usr/lib/modules/" + kver);
    overlay.Unit("peinit-test.service",
                 "ExecStart=-/usr/local/bin/policy_probe af_packet@socket:17,3=0 "
                 "af_alg@socket:38,5=EAFNOSUPPORT\n"
                 "ExecStart=-/bin/sh -c 'out=$(modprobe dummy 2>&1); rc=$?; "
                 "echo \"$out\" | sed \"s/^/MODPROBE /\"; "
                 "echo \"MODPROBE rc=$rc live=$(test -e /sys/module/dummy && echo yes || echo no)\"'\n" +
                     std::string(kStatusAndPoweroff));
    std::string disk = (work_ / "disk.img").string();
    ASSERT_EQ(MakeDisk(overlay, disk, std::string("--uuid ") + kUuid), "");

    ImageBoot boot;
    boot.name = "realroot-allowlist";
    boot.image_toml = R"(kernel = "peinit"
units = ["@CASE@/units"]
hive = "@CASE@/hive.toml"
modules = ["af_packet", "algif_hash", "dummy"]
)";
    boot.append = std::string("root=UUID=") + kUuid + " rw systemd.show_status=error";
    boot.qemu_args = {"-m", "1024", "-drive", "file=" + disk + ",if=virtio,format=raw"};
    boot.timeout = std::chrono::seconds(800);
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("peinit: handover: kernel.modprobe=/run/peinit/ro/bin/peinit-modprobe "
                      "enforces AutoLoadPolicy=allow-list in the real root"))
        << Explain(r);
    EXPECT_TRUE(r.Has("systemd[1]: systemd 252")) << Explain(r);
    auto probes = r.Probes();
    EXPECT_EQ(probes["af_packet"], "ok") << Explain(r);
    EXPECT_EQ(probes["af_alg"], "ok") << Explain(r);
    EXPECT_TRUE(r.Has("peinit-modprobe: loaded af_packet for net-pf-17 from image.pkg"))
        << Explain(r);
    EXPECT_TRUE(r.Has("peinit-modprobe: refused demand load of net-pf-38 (module af_alg): not in "
                      "AutoLoadAllowed"))
        << Explain(r);
    EXPECT_FALSE(r.Results("install command '/bin/false' for module dummy").empty()) << Explain(r);
    EXPECT_FALSE(r.Results("MODPROBE rc=1 live=no").empty()) << Explain(r);
    auto status = StatusJson(r);
    ASSERT_TRUE(status) << Explain(r);
    EXPECT_TRUE(status->At("lock.locked").IsBool());
    EXPECT_EQ(status->Bool("lock.locked"), false);
    EXPECT_EQ(status->Str("kernel.modprobe"), "/run/peinit/ro/bin/peinit-modprobe");
    EXPECT_EQ(status->Str("policy.autoload.value"), "allow-list");
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// Debian's stock kernel (no module_lockdown): the same root comes up under the fallback lock
// (kernel.modules_disabled=1, kernel.modprobe emptied), and status in the real root says so.
TEST_F(RealRootBoot, DebianKernelFallbackLock) {
    Overlay overlay(work_ / "overlay");
    overlay.Unit("peinit-test.service", kStatusAndPoweroff);
    std::string disk = (work_ / "disk.img").string();
    ASSERT_EQ(MakeDisk(overlay, disk, std::string("--uuid ") + kUuid), "");

    ImageBoot boot;
    boot.name = "realroot-debian";
    boot.kernel = "debian";
    boot.image_toml = R"(kernel = "debian"
units = ["@CASE@/units"]
hive = "@CASE@/hive.toml"
)";
    boot.append = std::string("root=UUID=") + kUuid + " rw systemd.show_status=error";
    // crc32c_intel (ext4's crc32c) needs SSE4.2.
    boot.qemu_args = {"-cpu", "max", "-m", "1024", "-drive",
                      "file=" + disk + ",if=virtio,format=raw"};
    boot.timeout = std::chrono::seconds(800);
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("peinit: lockdown locked=1 mechanism=modules_disabled")) << Explain(r);
    EXPECT_TRUE(r.Has("systemd[1]: systemd 252")) << Explain(r);
    auto status = StatusJson(r);
    ASSERT_TRUE(status) << Explain(r);
    EXPECT_EQ(status->Bool("lock.locked"), true);
    EXPECT_EQ(status->Str("lock.mechanism"), "modules_disabled");
    EXPECT_TRUE(status->At("kernel.modprobe").IsString());
    EXPECT_EQ(status->Str("kernel.modprobe"), "");
    auto modules = ModuleStatuses(*status);
    for (const char* m : {"virtio_blk", "ext4"}) {
        EXPECT_TRUE(modules[m] == "loaded" || modules[m] == "builtin") << m << "\n" << Explain(r);
    }
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// root=PARTUUID= and root=LABEL=, with a decoy disk first: the tag picks the right device (a GPT
// partition on the second disk, found by libblkid probing, since no udev makes /dev/disk/by-*
// links in the initramfs). The real root's init is the small static root_init.
TEST_F(RealRootBoot, PartuuidAndLabelFindTheRightDisk) {
    std::string decoy = StaticRootDisk(work_, "decoy", "--label decoy");
    std::string gpt = StaticRootDisk(work_, "gpt",
                                     "--label peinit-label --gpt --partlabel peinit-part "
                                     "--partuuid 6a1d4e2c-0f3b-4c5d-8e9f-0123456789ab");
    ASSERT_FALSE(HasFailure());
    for (const std::string root :
         {"PARTUUID=6A1D4E2C-0F3B-4C5D-8E9F-0123456789AB", "LABEL=peinit-label"}) {
        ImageBoot boot;
        boot.name = "realroot-tags";  // units: virtio_blk + ext4; LockAfterBoot
        boot.image_toml = R"(kernel = "peinit"
units = ["@CASE@/units"]
hive = "@CASE@/hive.toml"
)";
        boot.append = "root=" + root;
        boot.qemu_args = {"-drive", "file=" + decoy + ",if=virtio,format=raw",
                          "-drive", "file=" + gpt + ",if=virtio,format=raw"};
        auto r = BuildAndBoot(boot);
        ASSERT_TRUE(r.build_error.empty()) << r.build_error;
        EXPECT_TRUE(r.Has("peinit: handoff: root " + root + " is vdb1 (ext4")) << root << "\n"
                                                                              << Explain(r);
        EXPECT_TRUE(r.Has("peinit: handoff: mounted /dev/vdb1 (ext4, ro) on /newroot"))
            << Explain(r);
        auto probes = r.Probes();
        EXPECT_EQ(probes["root_init_is_pid1"], "ok") << Explain(r);
        EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
    }
}

// The root device never appears (its disk driver is shipped but not in the boot-time set, and
// AutoLoadPolicy=disabled keeps coldplug from loading it): a bounded wait, an emergency message
// that names what was awaited, the block devices seen and the driver coldplug matched and did
// not load; the lock is still applied and the VM powers off.
TEST_F(RealRootBoot, MissingRootIsExplainedAndStillLocked) {
    std::string disk = StaticRootDisk(work_, "disk", "");
    ASSERT_FALSE(HasFailure());
    ImageBoot boot;
    boot.name = "realroot-missing";
    boot.image_toml = R"(kernel = "peinit"
units = ["@CASE@/units"]
hive = "@CASE@/hive.toml"
modules = ["virtio_blk"]
)";
    boot.append = std::string("root=UUID=") + kUuid + " rootwait=3";
    boot.qemu_args = {"-drive", "file=" + disk + ",if=virtio,format=raw"};
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has(std::string("root device UUID=") + kUuid + " did not appear within 3 s"))
        << Explain(r);
    EXPECT_TRUE(r.Has("drivers coldplug matched and did not load: virtio_blk (refused: "))
        << Explain(r);
    EXPECT_TRUE(r.Has("peinit: lockdown locked=1")) << Explain(r);
    EXPECT_FALSE(r.Has("Kernel panic")) << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// R-30: a kernel whose modules are shipped compressed (.ko.zst, as Arch and Fedora do; made here
// from our kernel's tree with zstd and depmod): the image builder packages the compressed files
// as they are, peinit verifies them, decompresses them in memory and loads them, and the root
// they drive is mounted.
TEST_F(RealRootBoot, CompressedModulesLoadAtBoot) {
    const std::string kdir = KernelDirFor("peinit");
    std::string kver = KernelRelease(kdir);
    fs::path zkernel = work_ / "kernel";
    std::error_code ec;
    fs::remove_all(zkernel, ec);
    fs::create_directories(zkernel);
    fs::create_symlink(kdir + "/bzImage", zkernel / "bzImage");
    fs::copy_file(kdir + "/kver", zkernel / "kver");
    std::string log;
    const std::string mods = (zkernel / "modroot/lib/modules" / kver).string();
    ASSERT_EQ(Sh("mkdir -p " + ShellQuote((zkernel / "modroot/lib/modules").string()) +
                     " && cp -a " + ShellQuote(kdir + "/modroot/lib/modules/" + kver) + " " +
                     ShellQuote((zkernel / "modroot/lib/modules").string()) +
                     " && find " + ShellQuote(mods) +
                     " -name '*.ko' -exec zstd -q --rm -19 {} + && depmod -b " +
                     ShellQuote((zkernel / "modroot").string()) + " " + kver +
                     " && grep -c 'ext4.ko.zst' " + ShellQuote(mods + "/modules.dep"),
                 log),
              0)
        << log;
    std::string disk = StaticRootDisk(work_, "disk", "--label zroot");
    ASSERT_FALSE(HasFailure());
    ImageBoot boot;
    boot.name = "realroot-tags";  // units: virtio_blk + ext4; LockAfterBoot
    boot.kernel_dir = zkernel.string();
    boot.image_toml = R"(kernel = "peinit"
units = ["@CASE@/units"]
hive = "@CASE@/hive.toml"
)";
    boot.append = "root=LABEL=zroot";
    boot.qemu_args = {"-drive", "file=" + disk + ",if=virtio,format=raw"};
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("peinit: modules done ok=6 failed=0")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: handoff: mounted /dev/vda (ext4, ro) on /newroot")) << Explain(r);
    EXPECT_EQ(r.Probes()["root_init_is_pid1"], "ok") << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// R-36 (issue 24 point 3): two disks carry the root's LABEL= (a stranger's stick with the same
// label): the boot refuses to guess, names both devices on the emergency path, stays locked as
// the hive requires, and runs nothing from either disk (their init would print PROBE lines).
TEST_F(RealRootBoot, TagOnTwoDisksIsRefusedNamingBoth) {
    std::string first = StaticRootDisk(work_, "twin-a", "--label peinit-twin");
    std::string second = StaticRootDisk(work_, "twin-b", "--label peinit-twin");
    ASSERT_FALSE(HasFailure());
    ImageBoot boot;
    boot.name = "realroot-twins";  // realroot-tags' units (virtio_blk + ext4) and LockAfterBoot
    boot.image_toml = R"(kernel = "peinit"
units = ["@SRC@/tests/boot/images/realroot-tags/units"]
hive = "@SRC@/tests/boot/images/realroot-tags/hive.toml"
)";
    boot.append = "root=LABEL=peinit-twin rootwait=5";
    boot.qemu_args = {"-drive", "file=" + first + ",if=virtio,format=raw",
                      "-drive", "file=" + second + ",if=virtio,format=raw"};
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("root LABEL=peinit-twin matches 2 devices: vda (ext4 ")) << Explain(r);
    EXPECT_TRUE(r.Has(", vdb (ext4 ")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: emergency")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: lockdown locked=1")) << Explain(r);
    EXPECT_FALSE(r.Has("handoff: mounted")) << Explain(r);
    EXPECT_TRUE(r.Probes().empty()) << "an init from one of the disks ran\n" << Explain(r);
    EXPECT_FALSE(r.Has("Kernel panic")) << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

}  // namespace
}  // namespace peinit::testing

namespace peinit::testing {
namespace {

// The one lines of the results channel that start with `prefix`, without it.
std::vector<std::string> Tagged(const ImageBootResult& r, const std::string& prefix) {
    std::vector<std::string> out;
    for (const auto& line : r.qemu.result_lines()) {
        if (line.starts_with(prefix)) out.push_back(line.substr(prefix.size()));
    }
    return out;
}

std::string Joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

// The test unit's program. Boot 1 (peinit not installed yet) does what an administrator does on a
// Debian machine (README "peinit on a Debian machine"): install the package offline, turn
// LockAfterBoot on, enable peinit, run the kernel hook exactly as a linux-image package's
// postinst does, show the host-only plan; then a hook run whose build fails (a unit naming a
// module the kernel lacks) must leave the image byte for byte. Every result on the channel as
// "ADOPT key=value". Boot 2 (installed): the installed peinitctl's status as nobody.
const char* kAdoptScript = R"SH(#!/bin/sh
set -u
if [ -x /usr/sbin/peinitctl ]; then
    echo "STATUS-JSON $(setpriv --reuid=nobody --regid=nogroup --clear-groups \
        /usr/sbin/peinitctl status --json | tr -d '\n')"
    exit 0
fi
kver=$(ls /lib/modules)
echo "ADOPT kver=$kver"
dpkg -i /root/peinit.deb >/tmp/dpkg.log 2>&1; echo "ADOPT dpkg=$?"
sed 's/^/ADOPT-DPKG /' /tmp/dpkg.log
sed -i 's/^LockAfterBoot = false/LockAfterBoot = true/' /etc/peinit/hive.toml
grep -q '^LockAfterBoot = true' /etc/peinit/hive.toml && echo "ADOPT lock_after_boot=true"
peinit-initramfs enable 2>&1 | sed 's/^/ADOPT-ENABLE /'
peinit-initramfs is-enabled && echo "ADOPT enabled=yes"
start=$(date +%s%N)
DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/zz-peinit "$kver" "/boot/vmlinuz-$kver" 2>&1 |
    sed 's/^/ADOPT-HOOK /'
echo "ADOPT hook_ms=$(( ($(date +%s%N) - start) / 1000000 ))"
peinit-image plan /etc/peinit --kver "$kver" 2>&1 | sed 's/^/ADOPT-PLAN /'
echo "ADOPT fallback=$(test -s "/boot/initrd.img-$kver.initramfs-tools" && echo kept || echo none)"
before=$(sha256sum "/boot/initrd.img-$kver" | cut -d' ' -f1)
printf '[[module]]\nname = "peinit_no_such_module"\n' >/etc/peinit/units/broken.toml
DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/zz-peinit "$kver" "/boot/vmlinuz-$kver" \
    >/tmp/fail.log 2>&1
echo "ADOPT failed_hook=$?"
sed 's/^/ADOPT-FAIL /' /tmp/fail.log
after=$(sha256sum "/boot/initrd.img-$kver" | cut -d' ' -f1)
echo "ADOPT image_unchanged=$(test "$before" = "$after" && echo yes || echo no)"
echo "ADOPT leftovers=$(ls -a /boot | grep -c -v -e '^\.\.\?$' -e '^vmlinuz-' -e '^initrd\.img-' -e '^config-' -e '^System\.map-')"
rm /etc/peinit/units/broken.toml
sync
)SH";

// Issue 22: from `dpkg -i` to a reboot under peinit's lock, on Debian's own kernel as installed
// in the root (tests/realroot/build --with-kernel). Boot 1 (peinit's lab image, any initramfs
// would do) installs and enables peinit in the guest and runs the kernel hook; the test takes
// /boot/vmlinuz-KVER and /boot/initrd.img-KVER out of the disk (debugfs) and boots them: the
// host-only set computed in boot 1 loads, the lock engages, systemd comes up, and
// `peinitctl status --json` as nobody shows the lock, the modules and the image's provenance.
TEST_F(RealRootBoot, AdoptionInstallEnableReboot) {
    const std::string tree = RealRootTree("PEINIT_REALROOT_KERNEL_DIR");
    ASSERT_FALSE(tree.empty()) << "PEINIT_REALROOT_KERNEL_DIR is not set (tests/setup.sh)";
    std::string kver;
    for (const auto& e : fs::directory_iterator(tree + "/lib/modules")) {
        kver = e.path().filename().string();
    }
    ASSERT_FALSE(kver.empty()) << tree << " has no kernel";
    std::string deb;
    for (const auto& e : fs::directory_iterator(PEINIT_DEB_DIR)) {
        if (e.path().extension() == ".deb" && e.path().filename().string().starts_with("peinit_")) {
            deb = e.path().string();
        }
    }
    ASSERT_FALSE(deb.empty()) << "no peinit_*.deb in " << PEINIT_DEB_DIR << " (deb_build)";

    Overlay overlay(work_ / "overlay");
    overlay.Copy(deb, "/root/peinit.deb");
    overlay.Write("/usr/local/sbin/adopt", kAdoptScript, fs::perms(0755));
    overlay.Unit("peinit-test.service",
                 "ExecStart=-/usr/local/sbin/adopt\n"
                 "ExecStart=/bin/systemctl --no-block poweroff\n");
    std::string disk = (work_ / "disk.img").string();
    ASSERT_EQ(MakeDisk(overlay, disk, std::string("--uuid ") + kUuid, tree), "");

    ImageBoot first;
    // The lab's Debian-kernel image (units: virtio_pci, virtio_blk, ext4), in a directory of its
    // own (RealRootBoot.DebianKernelFallbackLock may be building the same image meanwhile).
    first.name = "adoption-boot-1";
    first.kernel = "debian";
    first.image_toml = R"(kernel = "debian"
units = ["@SRC@/tests/boot/images/realroot-debian/units"]
hive = "@SRC@/tests/boot/images/realroot-debian/hive.toml"
)";
    first.append = std::string("root=UUID=") + kUuid + " rw systemd.show_status=error";
    first.qemu_args = {"-cpu", "max", "-m", "1024", "-drive",
                       "file=" + disk + ",if=virtio,format=raw"};
    first.timeout = std::chrono::seconds(900);
    auto r1 = BuildAndBoot(first);
    ASSERT_TRUE(r1.build_error.empty()) << r1.build_error;
    std::cerr << "[ boot 1 ] " << r1.qemu.describe() << "\n"
              << Joined(Tagged(r1, "ADOPT ")) << Joined(Tagged(r1, "ADOPT-PLAN "));
    auto said = [&](const std::string& what) {
        auto lines = Tagged(r1, "ADOPT ");
        return std::find(lines.begin(), lines.end(), what) != lines.end();
    };
    EXPECT_TRUE(said("kver=" + kver)) << Explain(r1);
    EXPECT_TRUE(said("dpkg=0")) << Explain(r1);
    EXPECT_TRUE(said("lock_after_boot=true")) << Explain(r1);
    EXPECT_TRUE(said("enabled=yes")) << Explain(r1);
    EXPECT_TRUE(said("fallback=kept")) << Explain(r1);
    // The host-only plan names the root's chain and its file system, each with its rule.
    const std::string plan = Joined(Tagged(r1, "ADOPT-PLAN "));
    for (const char* m : {"virtio_blk", "ext4"}) {
        EXPECT_NE(plan.find(m), std::string::npos) << m << "\n" << plan;
    }
    EXPECT_NE(plan.find("host"), std::string::npos) << plan;
    // The failed build: non-zero with the reason, the previous image byte for byte, no debris.
    EXPECT_FALSE(said("failed_hook=0")) << Explain(r1);
    EXPECT_TRUE(said("image_unchanged=yes")) << Explain(r1);
    EXPECT_TRUE(said("leftovers=0")) << Explain(r1);
    EXPECT_NE(Joined(Tagged(r1, "ADOPT-FAIL ")).find("peinit_no_such_module"), std::string::npos)
        << Explain(r1);
    ASSERT_TRUE(r1.qemu.clean_exit()) << Explain(r1);
    ASSERT_FALSE(HasFailure());

    // The machine's kernel and peinit's image, as the disk has them.
    const std::string vmlinuz = (work_ / "vmlinuz").string();
    const std::string initrd = (work_ / "initrd.img").string();
    for (const auto& [from, to] : {std::pair{"/boot/vmlinuz-" + kver, vmlinuz},
                                   std::pair{"/boot/initrd.img-" + kver, initrd}}) {
        std::string log;
        fs::remove(to);
        ASSERT_EQ(Sh("debugfs -R " + ShellQuote("dump " + from + " " + to) + " " +
                         ShellQuote(disk),
                     log),
                  0)
            << log;
        ASSERT_TRUE(fs::exists(to) && fs::file_size(to) > 0) << from << ": " << log;
    }

    // Boot 2: the machine's next boot, from what the hook wrote.
    QemuOptions o;
    o.kernel = vmlinuz;
    o.initrd = initrd;
    o.append = std::string("root=UUID=") + kUuid + " rw systemd.show_status=error";
    o.memory_mb = 1024;
    o.extra_args = {"-cpu", "max", "-drive", "file=" + disk + ",if=virtio,format=raw"};
    o.timeout = std::chrono::seconds(600);
    o.log_file = (work_ / "boot-2.log").string();
    ImageBootResult r2;
    r2.qemu = run_qemu(o);
    std::cerr << "[ boot 2 ] " << r2.qemu.describe() << "\n";
    EXPECT_TRUE(r2.Has("peinit: lockdown locked=1")) << Explain(r2);
    EXPECT_TRUE(r2.Has("systemd[1]: systemd 252")) << Explain(r2);
    // PID 1 wrote its log unthrottled and gave the real init the kernel's rate limit back
    // (systemd then turns it off again itself, as it does on every boot).
    EXPECT_TRUE(r2.Has("(kernel.printk_devkmsg=ratelimit)")) << Explain(r2);
    EXPECT_FALSE(r2.Has("kernel.printk_devkmsg stays on")) << Explain(r2);
    auto status = StatusJson(r2);
    ASSERT_TRUE(status) << Explain(r2);
    EXPECT_EQ(status->Bool("lock.locked"), true);
    EXPECT_EQ(status->Int("lock.pid"), 1);
    auto modules = ModuleStatuses(*status);
    for (const char* m : {"virtio_blk", "ext4"}) {
        EXPECT_TRUE(modules[m] == "loaded" || modules[m] == "builtin") << m << "\n" << Explain(r2);
    }
    EXPECT_EQ(status->Str("image.kernel_release"), kver) << Explain(r2);
    EXPECT_EQ(status->Str("image.module_mode"), "host") << Explain(r2);
    EXPECT_TRUE(status->Str("image.generator").starts_with("peinit-image ")) << Explain(r2);
    EXPECT_EQ(status->Str("image.key_fingerprint").size(), 64u) << Explain(r2);
    // Built by the hook in boot 1, stamped with that time (not a reproducible build's epoch).
    EXPECT_TRUE(status->Str("image.built").starts_with("20")) << Explain(r2);
    EXPECT_TRUE(r2.qemu.clean_exit()) << Explain(r2);
}

}  // namespace
}  // namespace peinit::testing
