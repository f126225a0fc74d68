// PID-1 boot tests (issue 4, R-23): whole images built with peinit-image and booted in QEMU.
// Each ctest test is one boot; the assertions read what the guest printed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "image_boot.h"

namespace peinit::testing {
namespace {


// The image's service (pid1_probe) checks mounts, records and reaping, then sends SIGTERM to
// PID 1, which must shut down in order and power off: QEMU exits 0 by itself.
TEST(Pid1Boot, ReapsOrphansAndPowersOffOnSigterm) {
    ImageBoot boot;
    boot.name = "pid1";
    boot.image_toml = R"(kernel = "peinit"
units = ["@CASE@/units"]
hive = "@CASE@/hive.toml"
[[files]]
src = "@BUILD@/tests/boot/pid1_probe"
dst = "/usr/bin/pid1_probe"
)";
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    auto probes = r.Probes();
    for (const char* check :
         {"pid1_is_peinit", "mount_proc", "mount_sys", "mount_dev", "mount_run", "record_policy",
          "record_lockdown", "orphans_reaped", "sigterm_sent"}) {
        EXPECT_EQ(probes[check], "ok") << check << "\n" << Explain(r);
    }
    EXPECT_EQ(probes.count("terminated_by_shutdown"), 0u) << Explain(r);
    for (const char* stage : {"early-mounts", "config", "lockdown", "handoff"}) {
        EXPECT_TRUE(r.Has(std::string("peinit: stage ") + stage + " done ok")) << stage;
    }
    EXPECT_TRUE(r.Has("peinit: shutdown: poweroff (SIGTERM)")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: shutdown: poweroff now")) << Explain(r);
    EXPECT_FALSE(r.Has("Kernel panic")) << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// The README's main job: images/demo boots to its services, the lock engages, and the VM
// powers off by itself.
TEST(Pid1Boot, DemoImageBootsToItsServices) {
    ImageBoot boot;
    boot.name = "demo";
    boot.image_dir = std::string(PEINIT_SOURCE_DIR) + "/images/demo";
    boot.qemu_args = {"-nic", "user,model=virtio-net-pci"};
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("peinit: lockdown locked=1 mechanism=syscall trigger=registry"))
        << Explain(r);
    EXPECT_TRUE(r.Has("peinit demo: services started")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: service demo-banner exited exit 0")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: shutdown: poweroff (service exit_action)")) << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// The same peinit on Debian's own, unpatched kernel: it boots, falls back to modules_disabled
// for the lock and reaches its services.
TEST(Pid1Boot, DebianKernelImageBoots) {
    ImageBoot boot;
    boot.name = "debian";
    boot.kernel = "debian";
    boot.image_dir = std::string(PEINIT_SOURCE_DIR) + "/images/debian";
    // As images/debian/image.toml's [boot]: crc32c_intel (ext4's crc32c) needs SSE4.2.
    boot.qemu_args = {"-cpu", "max", "-nic", "user,model=virtio-net-pci"};
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("Linux version 6.1.0-")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: stage handoff done ok")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit debian: services started")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: modules done ok=23 failed=0")) << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// root= on the command line: peinit loads the disk and file-system drivers, locks, mounts the
// ext4 root (file system found from /proc/filesystems), moves /proc /sys /dev /run, empties the
// initramfs and execs the real root's /sbin/init as PID 1.
TEST(Pid1Boot, SwitchesToTheRealRoot) {
    namespace fs = std::filesystem;
    fs::path work = fs::current_path() / "boot-artifacts" / "switchroot-disk";
    std::error_code ec;
    fs::remove_all(work, ec);
    for (const char* dir : {"sbin", "proc", "sys", "dev", "run"}) {
        fs::create_directories(work / "root" / dir);
    }
    fs::copy_file(PEINIT_ROOT_INIT, work / "root" / "sbin" / "init");
    std::string disk = (work / "disk.img").string();
    std::string mkfs = "mke2fs -q -F -t ext4 -d " + (work / "root").string() + " " + disk + " 16M";
    ASSERT_EQ(std::system(mkfs.c_str()), 0) << mkfs;

    ImageBoot boot;
    boot.name = "switchroot";
    boot.image_toml = R"(kernel = "peinit"
units = ["@CASE@/units"]
hive = "@CASE@/hive.toml"
)";
    boot.append = "root=/dev/vda";
    boot.qemu_args = {"-drive", "file=" + disk + ",if=virtio,format=raw"};
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("peinit: lockdown locked=1")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: handoff: mounted /dev/vda (ext4, ro) on /newroot")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: handoff: exec /sbin/init on /dev/vda")) << Explain(r);
    auto probes = r.Probes();
    for (const char* check :
         {"root_init_is_pid1", "root_is_ext4", "proc_moved", "dev_moved", "initramfs_init_gone"}) {
        EXPECT_EQ(probes[check], "ok") << check << "\n" << Explain(r);
    }
    EXPECT_FALSE(r.Has("Kernel panic")) << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

}  // namespace
}  // namespace peinit::testing
