// Boot tests of the lockdown and module-policy story (R-02, R-14..R-17, R-19; the malformed hive
// (R-01) and the Debian kernel's modules_disabled fallback (R-18) are fault cases, in
// fault_boot_test.cpp): each test builds
// one image from tests/boot/images/lockdown-<case>/ with the real `peinit-image build` (which
// ships the image's modules in a signed package: the module stage, the coldplug stage and
// peinit-modprobe load only from verified packages), adds the policy probe
// (tests/boot/policy_probe.c, a service whose exit powers the guest off) and test modules as
// plain files, boots it
// under QEMU and asserts on the probe's "PROBE name ok|FAIL detail" lines (results channel) and
// on the console (the kernel's and PID 1's lines).
// One gtest test = one boot = one ctest test.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "image_boot.h"

#ifndef PEINIT_SOURCE_DIR
#error "PEINIT_SOURCE_DIR must be defined"
#endif

namespace fs = std::filesystem;
using peinit::testing::BuildAndBoot;
using peinit::testing::ImageBoot;
using peinit::testing::ImageBootResult;
using peinit::testing::KernelDirFor;
using peinit::testing::ReadFile;

namespace {

struct Case {
    std::string name;  // tests/boot/images/<name>
    std::string kernel = "peinit";
    std::string append;  // beyond the image's own `cmdline` (BuildAndBoot puts that first)
    std::vector<std::string> qemu_args;
    // Files copied into /lib/peinit-test/: paths relative to the kernel dir.
    std::vector<std::string> test_files;
    // QEMU monitor commands sent when the console shows a text (hot-plug).
    std::vector<peinit::testing::MonitorStep> monitor = {};
    // Further files: (host path, image path).
    std::vector<std::pair<std::string, std::string>> files = {};
};

class LockdownBoot : public ::testing::Test {
  protected:
    // Builds and boots `c`; the probe's results and console are in the returned result.
    ImageBootResult Boot(const Case& c) {
        ImageBootResult result;
        const std::string kernel_dir = KernelDirFor(c.kernel);
        if (kernel_dir.empty()) {
            result.build_error = "no kernel dir for " + c.kernel +
                                 ": set PEINIT_KERNEL_DIR / PEINIT_DEBIAN_KERNEL_DIR";
            return result;
        }
        std::string toml =
            ReadFile((fs::path(PEINIT_SOURCE_DIR) / "tests/boot/images" / c.name / "image.toml").string());
        peinit::testing::ReplaceAll(toml, "@KDIR@", kernel_dir);
        auto add_file = [&](const std::string& src, const std::string& dst) {
            toml += "\n[[files]]\nsrc = \"" + src + "\"\ndst = \"" + dst + "\"\n";
        };
        add_file(POLICY_PROBE_PATH, "/usr/bin/policy_probe");
        add_file(ON_CHANNEL_PATH, "/usr/bin/on_channel");
        for (const auto& [src, dst] : c.files) add_file(src, dst);
        for (const auto& f : c.test_files) {
            add_file((fs::path(kernel_dir) / f).string(),
                     "/lib/peinit-test/" + (fs::path(f).parent_path().filename() == "unsigned"
                                                ? "unsigned/" + fs::path(f).filename().string()
                                                : fs::path(f).filename().string()));
        }

        ImageBoot boot;
        boot.name = c.name;
        boot.image_toml = toml;
        boot.kernel = c.kernel;
        boot.append = c.append;
        boot.qemu_args = c.qemu_args;
        boot.monitor = c.monitor;
        boot.smp = 2;
        boot.timeout = std::chrono::seconds(c.monitor.empty() ? 180 : 360);
        result = BuildAndBoot(boot);
        return result;
    }

    // Every named probe ran and said ok; the probe finished; the guest powered off cleanly.
    static void ExpectProbes(const ImageBootResult& r, const std::vector<std::string>& names) {
        ASSERT_TRUE(r.build_error.empty()) << r.build_error;
        auto probes = r.Probes();
        for (const auto& n : names) {
            auto it = probes.find(n);
            if (it == probes.end()) {
                ADD_FAILURE() << "probe " << n << " did not run";
            } else {
                EXPECT_EQ(it->second, "ok") << "probe " << n;
            }
        }
        for (const auto& [n, v] : probes) EXPECT_EQ(v, "ok") << "probe " << n;
        EXPECT_FALSE(r.Results("PROBE-DONE").empty()) << "the probe did not finish";
        EXPECT_TRUE(r.qemu.clean_exit()) << r.qemu.describe();
        std::cerr << "boot " << r.qemu.describe() << "\n";
    }

    static std::string Console(const ImageBootResult& r) { return peinit::testing::Explain(r); }
};

const char* kProvider = "test-modules/peinit_test_provider.ko";
const char* kUnsigned = "test-modules/unsigned/peinit_test_param.ko";

TEST_F(LockdownBoot, LockedAfterBoot) {
    // `peinit.lock=0 peinit.autoload=enabled` comes from the image's cmdline.
    Case c{"lockdown-locked",
           "peinit",
           "",
           {"-nic", "user,model=virtio-net-pci"},
           {kProvider}};
    ImageBootResult r = Boot(c);
    ExpectProbes(r, {"locked", "finit_eperm", "init_eperm", "initfile_eperm", "delete_eperm",
                     "delete_missing_eperm", "packet_eafnosupport", "packet_not_loaded",
                     "loop_loaded", "dummy_not_loaded", "coldplug_virtio_net", "record_syscall",
                     "record_locked", "coldplug_record"});
    // The kernel's own record of the lock, from the hive.
    auto lock_lines = r.Grep("module_lockdown: locked by pid=1");
    ASSERT_FALSE(lock_lines.empty()) << Console(r);
    EXPECT_NE(lock_lines.front().find("trigger=registry"), std::string::npos) << lock_lines[0];
    EXPECT_TRUE(r.Has("lockdown locked=1 mechanism=syscall trigger=registry")) << Console(r);
    // A refused boot module does not prevent the lock.
    EXPECT_TRUE(r.Has("module dummy failed")) << Console(r);
    // The command line cannot loosen the hive (R-02).
    EXPECT_TRUE(r.Has("peinit.lock=0 ignored")) << Console(r);
    EXPECT_TRUE(r.Has("coldplug: loaded virtio_net")) << Console(r);
    EXPECT_TRUE(r.Has("autoload policy=enabled")) << Console(r);
}

TEST_F(LockdownBoot, UnlockedDemandLoadsEnabled) {
    Case c{"lockdown-unlocked", "peinit", "", {}, {kProvider}};
    ImageBootResult r = Boot(c);
    ExpectProbes(
        r, {"unlocked", "helper", "load", "loaded", "unload", "unloaded", "packet_demand_load",
            "packet_loaded", "alg_blacklisted", "alg_not_loaded", "record_enabled"});
    EXPECT_TRUE(r.Has("lockdown locked=0")) << Console(r);
    EXPECT_TRUE(r.Has("peinit-modprobe: loaded af_packet for net-pf-17")) << Console(r);
    EXPECT_TRUE(
        r.Has("peinit-modprobe: refused demand load of net-pf-38 (module af_alg): "
              "blacklisted (hive Machine\\System\\Modules\\Blacklist)"))
        << Console(r);
}

TEST_F(LockdownBoot, AllowList) {
    // `peinit.autoload=enabled` comes from the image's cmdline.
    Case c{"lockdown-allowlist",
           "peinit",
           "",
           {"-nic", "user,model=virtio-net-pci"},
           {}};
    ImageBootResult r = Boot(c);
    ExpectProbes(r, {"unlocked", "helper", "packet_allowed", "packet_loaded", "alg_refused",
                     "alg_not_loaded", "virtio_net_refused", "record_allow_list",
                     "modprobe_sealed", "record_gate"});
    EXPECT_TRUE(
        r.Has("peinit-modprobe: refused demand load of net-pf-38 (module af_alg): not in "
              "AutoLoadAllowed"))
        << Console(r);
    EXPECT_TRUE(r.Has("peinit.autoload=enabled ignored")) << Console(r);
    EXPECT_TRUE(r.Has("coldplug: refused virtio_net")) << Console(r);
    EXPECT_TRUE(r.Has("autoload policy=allow-list(hive)")) << Console(r);
    // Issue 15 (R-27): with its helper installed, PID 1 seals kernel.modprobe.
    EXPECT_TRUE(r.Has("gate=modprobe-sealed")) << Console(r);
}

TEST_F(LockdownBoot, AutoloadDisabledAndSigningEnforced) {
    // "Signed loads" under enforce: the boot module `loop`, loaded from the signed package.
    Case c{"lockdown-disabled", "peinit", "", {}, {kUnsigned}};
    ImageBootResult r = Boot(c);
    ExpectProbes(
        r, {"unlocked", "helper_empty", "autoload_gate_closed", "packet_no_demand_load", "packet_not_loaded", "sig_enforce",
            "signed_boot_module", "unsigned_rejected", "unsigned_not_loaded"});
    // No helper ran at all.
    EXPECT_FALSE(r.Has("peinit-modprobe:")) << Console(r);
    EXPECT_TRUE(r.Has("autoload policy=disabled(hive) helper=\"\"")) << Console(r);
    // Issue 15 (R-27): disabled is the kernel's gate, not only an empty kernel.modprobe.
    EXPECT_TRUE(r.Has("gate=autoload-disabled")) << Console(r);
    EXPECT_TRUE(r.Has("modules signing policy=enforce(hive) sig_enforce=Y")) << Console(r);
}

// Issue 15 point 10 (R-28): services hold SeLoadDriver (CAP_SYS_MODULE) and SeTcb
// (CAP_SYS_ADMIN) only when their unit grants them. All four services run as root: without the
// bounding-set drop the ordinary one would load the module and lock.
TEST_F(LockdownBoot, ServicePrivileges) {
    Case c{"lockdown-privileges", "peinit", "", {}, {kProvider}};
    ImageBootResult r = Boot(c);
    ExpectProbes(r, {"ordinary_bounding", "ordinary_initfile_eperm", "ordinary_finit_eperm",
                     "ordinary_lock_eperm", "ordinary_left_unlocked", "ordinary_nothing_loaded",
                     "loader_bounding", "loader_initfile", "loader_loaded", "loader_lock_eperm",
                     "loader_left_unlocked", "locker_bounding", "locker_delete_eperm",
                     "locker_lock", "locker_locked", "record_services"});
    EXPECT_TRUE(r.Has("service ordinary started pid=")) << Console(r);
    EXPECT_TRUE(r.Has("privileges=none")) << Console(r);
    EXPECT_TRUE(r.Has("privileges=SeLoadDriverPrivilege")) << Console(r);
    EXPECT_TRUE(r.Has("privileges=SeTcbPrivilege")) << Console(r);
    // The kernel's record names the service that locked, and the trigger.
    auto lock_lines = r.Grep("module_lockdown: locked by");
    ASSERT_FALSE(lock_lines.empty()) << Console(r);
    EXPECT_NE(lock_lines.front().find("trigger=runtime-syscall"), std::string::npos)
        << lock_lines.front();
    // `peinitctl status` says which service holds which privilege.
    auto holds = [&](const std::string& service, const std::string& privileges) {
        for (const auto& line : r.Results("  " + service + " ")) {
            if (line.find("privileges: " + privileges) != std::string::npos) return true;
        }
        return false;
    };
    EXPECT_TRUE(holds("ordinary", "none")) << Console(r);
    EXPECT_TRUE(holds("loader", "SeLoadDriverPrivilege")) << Console(r);
    EXPECT_TRUE(holds("locker", "SeTcbPrivilege")) << Console(r);
}

// Issue 24 points 1 and 2 (R-28, R-35): a root service without SeLoadDriverPrivilege tries each
// route back to it through what peinit installs or trusts, then triggers a demand load the
// allow-list refuses. Every write to the sealed tree fails with EROFS, its mount cannot be
// remounted, unmounted (EPERM) or moved aside (EBUSY), kernel.modprobe cannot be rewritten and
// PID 1 cannot be traced (EPERM). What the service can still write (the status record
// /run/peinit/policy.json, the initramfs's /etc/ld.so.preload) is trusted by nothing: af_alg is
// refused and not loaded, the helper did not map the preloaded library (which an ordinary dynamic
// program does, the control), and the allowed af_packet still loads through the same helper.
TEST_F(LockdownBoot, SealedTree) {
    Case c{"lockdown-sealed", "peinit", "", {}, {}};
    c.files = {{PRELOAD_MARKER_PATH, "/lib/peinit-test/preload_marker.so"}};
    ImageBootResult r = Boot(c);
    ExpectProbes(r, {"unlocked", "bounding", "no_new_privs", "helper_path", "helper_path_sealed",
                     "helper_path_rewritten", "helper_replaced", "helper_program_replaced",
                     "helper_renamed", "library_added", "library_replaced", "loader_replaced",
                     "preload_in_tree", "policy_edited", "key_added", "package_added",
                     "index_edited", "tree_remounted", "tree_unmounted", "tree_moved",
                     "tree_parent_moved", "ptrace_pid1", "status_record_edited",
                     "preload_added", "alg_refused", "alg_not_loaded", "helper_did_not_preload",
                     "packet_allowed", "packet_loaded", "helper_still_did_not_preload",
                     "preload_works", "preload_marked"});
    EXPECT_TRUE(r.Has("autoload: sealed tree /run/peinit/ro read-only")) << Console(r);
    EXPECT_TRUE(r.Has("peinit-modprobe: refused demand load of net-pf-38 (module af_alg): not in "
                      "AutoLoadAllowed"))
        << Console(r);
    EXPECT_TRUE(r.Has("peinit-modprobe: loaded af_packet for net-pf-17")) << Console(r);
    EXPECT_TRUE(r.Has("service attacker started pid=")) << Console(r);
    EXPECT_TRUE(r.Has("privileges=none")) << Console(r);
}

// R-37, issue 24 point 5: a device that appears only because coldplug loaded a driver gets its
// driver before the lock. peinit_test_parent (the unit's one module) registers the device
// peinit_test_bridge; coldplug loads its driver, whose binding registers peinit_test_leaf; with
// LockAfterBoot=true, peinit_test_leaf must be live before the lock (without settling, its
// uevent reaches PID 1's hot-add after the lock, which refuses it).
TEST_F(LockdownBoot, ColdplugSettlesBeforeTheLock) {
    Case c{"lockdown-settle", "peinit", "", {"-nic", "none"}, {}};
    ImageBootResult r = Boot(c);
    ExpectProbes(r, {"locked", "parent_loaded", "bridge_loaded", "leaf_device", "leaf_loaded",
                     "leaf_bound", "record_leaf"});
    EXPECT_TRUE(r.Has("coldplug: loaded peinit_test_bridge for /sys/devices/platform/"
                      "peinit_test_bridge"))
        << Console(r);
    EXPECT_TRUE(r.Has("coldplug: loaded peinit_test_leaf for /sys/devices/platform/"
                      "peinit_test_bridge/peinit_test_leaf"))
        << Console(r);
    auto done = r.Grep("coldplug done ");
    ASSERT_FALSE(done.empty()) << Console(r);
    EXPECT_NE(done.front().find("settled=yes"), std::string::npos) << done.front();
    EXPECT_EQ(done.front().find("rounds=1 "), std::string::npos) << done.front();
    // The leaf's driver came before the lock, in the console's order.
    const std::string& out = r.qemu.output;
    const auto leaf = out.find("coldplug: loaded peinit_test_leaf");
    const auto lock = out.find("lockdown locked=1");
    ASSERT_NE(leaf, std::string::npos) << Console(r);
    ASSERT_NE(lock, std::string::npos) << Console(r);
    EXPECT_LT(leaf, lock) << Console(r);
    EXPECT_FALSE(r.Has("hotplug: module peinit_test_leaf")) << Console(r);
}

// Issue 15 point 11 (R-29): while peinit stays PID 1, devices hot-plugged through the QEMU
// monitor get their drivers under the same AutoLoadPolicy and blacklist as coldplug, until the
// lock; after a runtime lock nothing is attempted. Debian's kernel: PCIe hotplug, and
// virtio_pci is a module there.
TEST_F(LockdownBoot, HotAddUnderThePolicyUntilTheLock) {
    Case c{"hotplug-debian",
           "debian",
           "",
           {"-nic", "none", "-device", "pcie-root-port,id=rp1,chassis=1,slot=1", "-device",
            "pcie-root-port,id=rp2,chassis=2,slot=2", "-device",
            "pcie-root-port,id=rp3,chassis=3,slot=3", "-device",
            "pcie-root-port,id=rp4,chassis=4,slot=4"},
           {},
           {{"PROBE-MARK hotplug-before-lock", "device_add virtio-rng-pci,bus=rp1,id=rng0"},
            {"PROBE-MARK hotplug-before-lock", "device_add virtio-balloon-pci,bus=rp2,id=bal0"},
            {"PROBE-MARK hotplug-before-lock", "device_add virtio-keyboard-pci,bus=rp3,id=kbd0"},
            {"PROBE-MARK hotplug-after-lock", "device_add virtio-net-pci,bus=rp4,id=net0"}}};
    ImageBootResult r = Boot(c);
    ExpectProbes(r, {"unlocked", "rng_not_at_boot", "add_before_lock", "rng_loaded",
                     "virtio_pci_loaded", "balloon_seen", "balloon_refused", "input_seen",
                     "input_refused", "locked", "add_after_lock", "net_seen", "net_not_loaded",
                     "record_locked"});
    EXPECT_EQ(r.qemu.monitor_steps_sent, 4u) << r.qemu.monitor_log;
    // Allowed: the bus driver for the PCI device, then the rng driver for its virtio device.
    EXPECT_TRUE(r.Has("hotplug: loaded virtio_pci for /sys/devices/")) << Console(r);
    EXPECT_TRUE(r.Has("hotplug: loaded virtio_rng for /sys/devices/")) << Console(r);
    // The blacklist and the allow-list, as for coldplug.
    bool balloon = false, input = false;
    for (const auto& l : r.Grep("hotplug: refused virtio_balloon for /sys/devices/")) {
        balloon = balloon || l.find("blacklisted") != std::string::npos;
    }
    for (const auto& l : r.Grep("hotplug: refused virtio_input for /sys/devices/")) {
        input = input || l.find("not in AutoLoadAllowed") != std::string::npos;
    }
    EXPECT_TRUE(balloon) << Console(r);
    EXPECT_TRUE(input) << Console(r);
    // After the lock: the NIC's devices were seen and nothing was attempted.
    bool locked_batch = false;
    for (const auto& l : r.Grep("hotplug done devices=")) {
        locked_batch = locked_batch || (l.find("locked=0") == std::string::npos &&
                                        l.find("loaded=0 refused=0 failed=0") != std::string::npos);
    }
    EXPECT_TRUE(locked_batch) << Console(r);
    EXPECT_FALSE(r.Has("hotplug: loaded virtio_net")) << Console(r);
    EXPECT_FALSE(r.Has("hotplug: module virtio_net")) << Console(r);
    // `peinitctl status` shows the hot-added devices.
    EXPECT_FALSE(r.Results("Hot-added devices:").empty()) << Console(r);
}

}  // namespace
