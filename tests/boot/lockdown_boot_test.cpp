// Boot tests of the lockdown and module-policy story (R-02, R-14..R-17, R-19; the malformed hive
// and the Debian kernel's modules_disabled fallback are fault cases, in
// fault_boot_test.cpp): each test builds
// one image from tests/boot/images/lockdown-<case>/ with the real `peinit-image build` (which
// ships the image's modules in a signed package: the module stage, the coldplug stage and
// peinit-modprobe load only from verified packages), adds the policy probe
// (tests/boot/policy_probe.c, a service whose exit powers the guest off) and test modules as
// plain files, boots it
// under QEMU and asserts on the probe's "PROBE name ok|FAIL detail" lines and on the console.
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
    std::string append;  // as the image's `cmdline` (BuildAndBoot does not read it)
    std::vector<std::string> qemu_args;
    // Files copied into /lib/peinit-test/: paths relative to the kernel dir.
    std::vector<std::string> test_files;
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
        auto add_file = [&](const std::string& src, const std::string& dst) {
            toml += "\n[[files]]\nsrc = \"" + src + "\"\ndst = \"" + dst + "\"\n";
        };
        add_file(POLICY_PROBE_PATH, "/usr/bin/policy_probe");
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
        boot.smp = 2;
        boot.timeout = std::chrono::seconds(180);
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
        EXPECT_TRUE(r.Has("PROBE-DONE")) << "the probe did not finish";
        EXPECT_TRUE(r.qemu.clean_exit()) << r.qemu.describe();
        std::cerr << "boot " << r.qemu.describe() << "\n";
    }

    static std::string Console(const ImageBootResult& r) {
        std::string out;
        for (const auto& l : r.qemu.lines()) out += l + "\n";
        return out;
    }
};

const char* kProvider = "test-modules/peinit_test_provider.ko";
const char* kUnsigned = "test-modules/unsigned/peinit_test_param.ko";

TEST_F(LockdownBoot, LockedAfterBoot) {
    Case c{"lockdown-locked",
           "peinit",
           "peinit.lock=0 peinit.autoload=enabled",
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
    // The command line cannot loosen the hive.
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
    Case c{"lockdown-allowlist",
           "peinit",
           "peinit.autoload=enabled",
           {"-nic", "user,model=virtio-net-pci"},
           {}};
    ImageBootResult r = Boot(c);
    ExpectProbes(r, {"unlocked", "helper", "packet_allowed", "packet_loaded", "alg_refused",
                     "alg_not_loaded", "virtio_net_refused", "record_allow_list"});
    EXPECT_TRUE(
        r.Has("peinit-modprobe: refused demand load of net-pf-38 (module af_alg): not in "
              "AutoLoadAllowed"))
        << Console(r);
    EXPECT_TRUE(r.Has("peinit.autoload=enabled ignored")) << Console(r);
    EXPECT_TRUE(r.Has("coldplug: refused virtio_net")) << Console(r);
    EXPECT_TRUE(r.Has("autoload policy=allow-list(hive)")) << Console(r);
}

TEST_F(LockdownBoot, AutoloadDisabledAndSigningEnforced) {
    // "Signed loads" under enforce: the boot module `loop`, loaded from the signed package.
    Case c{"lockdown-disabled", "peinit", "", {}, {kUnsigned}};
    ImageBootResult r = Boot(c);
    ExpectProbes(
        r, {"unlocked", "helper_empty", "packet_no_demand_load", "packet_not_loaded", "sig_enforce",
            "signed_boot_module", "unsigned_rejected", "unsigned_not_loaded"});
    // No helper ran at all.
    EXPECT_FALSE(r.Has("peinit-modprobe:")) << Console(r);
    EXPECT_TRUE(r.Has("autoload policy=disabled(hive) helper=\"\"")) << Console(r);
    EXPECT_TRUE(r.Has("modules signing policy=enforce(hive) sig_enforce=Y")) << Console(r);
}

}  // namespace
