// PID-1 boot tests (issue 4, R-23): whole images built with peinit-image and booted in QEMU.
// Each ctest test is one boot; the assertions read what the guest printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>

#include "image_boot.h"
#include "tests/json_at.h"

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

// Issue 16 point 6: `peinit-image boot --collect DIR` (the tool as a user runs it) gets the demo's
// records, kernel log and console out of the VM, and peinitctl on the host reads them with
// --root DIR: the lock from lockdown.json (DIR has no kernel facts) and who set it from the
// collected kernel log, the module outcomes from modules.json. Point 11: each line PID 1 logged
// before /dev/kmsg existed is on the console once. Issue 22 point 5: the image's provenance is
// among the records; issue 25: so is the measurement record (here "not measured": no TPM).
TEST(Pid1Boot, CollectedRecordsAreReadOnTheHost) {
    ScratchDir scratch;
    const std::string dir = scratch.path + "/collected";
    std::string log;
    int rc = Sh(ShellQuote(PEINIT_IMAGE_TOOL) + " boot " +
                    ShellQuote(std::string(PEINIT_SOURCE_DIR) + "/images/demo") +
                    " --kernel-dir " + ShellQuote(KernelDirFor("peinit")) +
                    " --timeout 300 --collect " + ShellQuote(dir) + " </dev/null",
                log);
    ASSERT_EQ(rc, 0) << log;
    EXPECT_NE(log.find("peinit-image: collected 9 files and the console log into " + dir),
              std::string::npos)
        << log;

    std::string json;
    ASSERT_EQ(Sh(ShellQuote(PEINITCTL_TOOL) + " status --root " + ShellQuote(dir) +
                     " --json 2>/dev/null",
                 json),
              0)
        << json;
    peinit::testing::TestJson status(json);
    ASSERT_TRUE(status.ok());
    EXPECT_TRUE(status.At("lock.locked").IsBool()) << json;
    EXPECT_EQ(status.Bool("lock.locked"), true) << json;
    EXPECT_EQ(status.Str("lock.read_from"), "record") << json;
    EXPECT_EQ(status.Str("lock.mechanism"), "syscall") << json;
    EXPECT_EQ(status.Str("lock.trigger"), "registry") << json;
    EXPECT_EQ(status.Str("lock.set_by_from"), "kernel-log") << json;
    EXPECT_EQ(status.Int("modules.summary.ok"), 20) << json;
    EXPECT_TRUE(status.At("modules.summary.failed").IsInt()) << json;
    EXPECT_EQ(status.Int("modules.summary.failed"), 0) << json;
    // The image's provenance came along (issue 22 point 5): the demo's module set is its units'.
    EXPECT_EQ(status.Str("image.module_mode"), "units") << json;
    EXPECT_EQ(status.Str("measurement.state"), "not-measured") << json;
    EXPECT_EQ(status.Str("image.key_fingerprint").size(), 64u) << json;
    std::set<std::string> loaded;
    for (std::size_t i = 0; i < status.Size("modules.list"); ++i) {
        const std::string at = "modules.list." + std::to_string(i);
        if (status.Str(at + ".status") == "loaded") loaded.insert(status.Str(at + ".name"));
    }
    for (const char* module : {"ext4", "jbd2", "bridge", "vxlan", "virtio_net", "tun"}) {
        EXPECT_EQ(loaded.count(module), 1u) << module << "\n" << json;
    }

    std::string blame, timeline;
    EXPECT_EQ(Sh(ShellQuote(PEINITCTL_TOOL) + " blame --root " + ShellQuote(dir), blame), 0);
    EXPECT_NE(blame.find(" ext4\n"), std::string::npos) << blame;
    EXPECT_EQ(Sh(ShellQuote(PEINITCTL_TOOL) + " timeline --root " + ShellQuote(dir), timeline),
              0);
    EXPECT_NE(timeline.find("module stage: 20 modules"), std::string::npos) << timeline;

    const std::string console = ReadFile(dir + "/console.log");
    EXPECT_NE(console.find("peinit demo: services started"), std::string::npos) << console;
    // The message alone: PID 1's own console line ("peinit: info: ...") and the kernel's echo
    // of the kernel log ("peinit: ...") are both counted.
    for (const char* early :
         {"peinit starting as PID 1", "stage early-mounts start", "stage early-mounts done ok"}) {
        size_t count = 0;
        for (size_t at = 0; (at = console.find(early, at)) != std::string::npos; ++at) ++count;
        EXPECT_EQ(count, 1u) << early << "\n" << console;
    }
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

// Boots the switchroot image with root=/dev/vda: a 16 MiB ext4 disk made in boot-artifacts/`name`
// whose tree has root_init as /sbin/init and the directories `dirs`, then `tweak` on the tree.
ImageBootResult BootSwitchRoot(const std::string& name, std::vector<const char*> dirs,
                               const std::function<void(const std::filesystem::path&)>& tweak = {}) {
    namespace fs = std::filesystem;
    fs::path work = fs::current_path() / "boot-artifacts" / name;
    std::error_code ec;
    fs::remove_all(work, ec);
    for (const char* dir : dirs) fs::create_directories(work / "root" / dir);
    if (tweak) tweak(work / "root");
    fs::copy_file(PEINIT_ROOT_INIT, work / "root" / "sbin" / "init");
    std::string disk = (work / "disk.img").string();
    std::string mkfs = "mke2fs -q -F -t ext4 -d " + (work / "root").string() + " " + disk + " 16M";
    ImageBootResult r;
    if (std::system(mkfs.c_str()) != 0) {
        r.build_error = "failed: " + mkfs;
        return r;
    }
    ImageBoot boot;
    boot.name = "switchroot";
    boot.image_toml = R"(kernel = "peinit"
units = ["@CASE@/units"]
hive = "@CASE@/hive.toml"
)";
    boot.append = "root=/dev/vda";
    boot.qemu_args = {"-drive", "file=" + disk + ",if=virtio,format=raw"};
    return BuildAndBoot(boot);
}

// root= on the command line: peinit loads the disk and file-system drivers, locks, mounts the
// ext4 root (file system found from /proc/filesystems), moves /proc /sys /dev /run, empties the
// initramfs and execs the real root's /sbin/init as PID 1.
TEST(Pid1Boot, SwitchesToTheRealRoot) {
    auto r = BootSwitchRoot("switchroot-disk", {"sbin", "proc", "sys", "dev", "run"});
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("peinit: lockdown locked=1")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: handoff: mounted /dev/vda (ext4, ro) on /newroot")) << Explain(r);
    EXPECT_TRUE(r.Has("peinit: handoff: exec /sbin/init on /dev/vda")) << Explain(r);
    auto probes = r.Probes();
    for (const char* check :
         {"root_init_is_pid1", "root_is_ext4", "proc_moved", "dev_moved", "initramfs_init_gone",
          "printk_devkmsg_ratelimit"}) {
        EXPECT_EQ(probes[check], "ok") << check << "\n" << Explain(r);
    }
    EXPECT_FALSE(r.Has("Kernel panic")) << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// Issue 24 point 6: the new root's /run is a symbolic link. A path-based MS_MOVE followed it (here
// to the initramfs's own /tmp, none: the mount was dropped and init ran with the handed-over
// helper's /run/peinit on the real root's disk). Now the handoff refuses, naming the link,
// before anything is moved; the emergency path keeps the lock and powers off; init never runs.
TEST(Pid1Boot, SymlinkedRunInTheNewRootIsRefused) {
    auto r = BootSwitchRoot("switchroot-symlink-disk", {"sbin", "proc", "sys", "dev", "tmp"},
                            [](const std::filesystem::path& root) {
                                std::filesystem::create_symlink("/tmp", root / "run");
                            });
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    EXPECT_TRUE(r.Has("peinit: handoff: mounted /dev/vda (ext4, ro) on /newroot")) << Explain(r);
    EXPECT_TRUE(
        r.Has("handoff: root=/dev/vda: refusing to move /run there: /run on the new root "
              "is or passes through a symbolic link (-> /tmp)"))
        << Explain(r);
    EXPECT_TRUE(r.Has("peinit: lockdown locked=1")) << Explain(r);
    EXPECT_FALSE(r.Has("handoff: exec /sbin/init")) << Explain(r);
    EXPECT_FALSE(r.Has("is dropped, not moved")) << Explain(r);
    EXPECT_EQ(r.Probes().count("root_init_is_pid1"), 0u) << Explain(r);
    EXPECT_FALSE(r.Has("Kernel panic")) << Explain(r);
    EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

}  // namespace
}  // namespace peinit::testing
