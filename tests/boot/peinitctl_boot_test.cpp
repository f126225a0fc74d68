// Boot tests of peinitctl: images from tests/boot/images/peinitctl-*/ booted in QEMU
// with the patched kernel. Each image's services run peinitctl and print its output between
// "PEINITCTL-BEGIN NAME" and "PEINITCTL-END NAME rc=N" lines on the results channel (through
// on_channel, as nobody where the test is about nobody); the test compares it with what the image
// configures.
//
// The module stage loads only from verified signed packages, so the test first makes a key pair
// and a package of the boot modules (peinit-pkg, from the kernel's own signed .ko files) and
// adds both to a copy of the image definition as [[files]].
//
//   locked:  LockAfterBoot=true in the hive: `status --json` as nobody shows the lock (trigger
//            registry, set by pid 1), the policy and every module's outcome; `timeline --svg`
//            gives one bar per module; `lock` as nobody is refused.
//   runtime: LockAfterBoot=false: `lock` as nobody is refused with the flag left at 0; as root it
//            locks and status shows trigger runtime-syscall, set by peinitctl.
#include <gtest/gtest.h>

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "image_boot.h"
#include "tests/json_at.h"

namespace fs = std::filesystem;
namespace pt = boost::property_tree;

namespace {

using peinit::testing::Section;
using peinit::testing::TestJson;

std::string Env(const char* name, const char* fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? v : fallback;
}

class PeinitctlBoot : public ::testing::Test {
  protected:
    static std::map<std::string, Section> Boot(const std::string& image, std::string& console) {
        std::map<std::string, Section> sections;
        const std::string kernel_dir = Env("PEINIT_KERNEL_DIR", PEINIT_KERNEL_DIR_DEFAULT);
        if (kernel_dir.empty()) {
            ADD_FAILURE() << "PEINIT_KERNEL_DIR is empty: run kernel/build and configure with "
                             "-DPEINIT_KERNEL_DIR";
            return sections;
        }
        char tmpl[] = "/tmp/peinitctl-boot.XXXXXX";
        const fs::path work = mkdtemp(tmpl);
        const fs::path dir = work / "image";
        fs::copy(fs::path(PEINIT_SOURCE_DIR) / "tests/boot/images" / image, dir,
                 fs::copy_options::recursive);
        const std::string added = peinit::testing::AddSignedBootPackage(
            dir.string(), work.string(), kernel_dir, {"loop", "dummy", "bridge", "stp", "llc"},
            PEINIT_PKG_TOOL);
        EXPECT_EQ(added, "");

        peinit::testing::ImageBoot boot;
        boot.name = image;
        boot.image_dir = dir.string();
        boot.kernel_dir = kernel_dir;
        boot.timeout = std::chrono::seconds(300);
        auto r = peinit::testing::BuildAndBoot(boot);
        console = peinit::testing::Explain(r) + "\n--- results channel ---\n" + r.qemu.results;
        EXPECT_TRUE(r.qemu.clean_exit()) << "the guest did not power off cleanly\n" << console;
        fs::remove_all(work);

        sections = peinit::testing::ResultSections(r.qemu.result_lines(), "PEINITCTL");
        return sections;
    }
};

TEST_F(PeinitctlBoot, Locked) {
    std::string console;
    auto sections = Boot("peinitctl-locked", console);
    ASSERT_TRUE(sections.count("status")) << console;

    // status --json as nobody, matching the image: hive lock, policy, module outcomes.
    const Section& status = sections["status"];
    EXPECT_EQ(status.rc, 0) << status.Text();
    TestJson t(status.Text());
    EXPECT_EQ(t.Int("version"), 1);
    EXPECT_TRUE(t.At("exit_code").IsInt());
    EXPECT_EQ(t.Int("exit_code"), 0);
    EXPECT_EQ(t.Bool("lock.locked"), true);
    EXPECT_EQ(t.Str("lock.mechanism"), "syscall");
    EXPECT_EQ(t.Str("lock.read_from"), "module_lockdown");
    EXPECT_EQ(t.Str("lock.trigger"), "registry");
    EXPECT_EQ(t.Int("lock.pid"), 1);
    EXPECT_EQ(t.Bool("lock.requested"), true);
    EXPECT_EQ(t.Str("lock.requested_source"), "hive");
    EXPECT_GT(t.Int("lock.boot_offset_ms"), 0);
    EXPECT_FALSE(t.Str("lock.wall_time").empty());
    EXPECT_EQ(t.Str("kernel.sig_enforce"), "0");
    EXPECT_EQ(t.Str("policy.hive.state"), "loaded");
    EXPECT_EQ(t.Str("policy.autoload.value"), "allow-list");
    EXPECT_EQ(t.Str("policy.autoload.source"), "hive");
    EXPECT_EQ(t.Str("policy.autoload_allowed.0"), "af_packet");
    EXPECT_EQ(t.Str("policy.signing.value"), "warn");
    ASSERT_TRUE(t.At("policy.blacklist").IsArray());
    ASSERT_EQ(t.Size("policy.blacklist"), 1u);
    EXPECT_EQ(t.Str("policy.blacklist.0.module"), "minix");
    std::map<std::string, std::string> outcome;
    for (std::size_t i = 0; i < t.Size("modules.list"); ++i) {
        const std::string at = "modules.list." + std::to_string(i);
        const std::string name = t.Str(at + ".name");
        const std::string state = t.Str(at + ".status");
        outcome[name] = state;
        if (state == "loaded") {
            EXPECT_GT(t.Int(at + ".duration_us"), 0) << name;
            EXPECT_EQ(t.Str(at + ".package"), "boot.pkg");
        }
    }
    EXPECT_EQ(outcome, (std::map<std::string, std::string>{{"loop", "loaded"},
                                                           {"dummy", "loaded"},
                                                           {"bridge", "loaded"},
                                                           {"stp", "loaded"},
                                                           {"llc", "loaded"},
                                                           {"minix", "blacklisted"}}));
    EXPECT_EQ(t.Int("modules.summary.ok"), 5);

    // The SVG: one bar per module.
    const Section& svg = sections["svg"];
    EXPECT_EQ(svg.rc, 0);
    std::string svg_text = svg.Text();
    std::ofstream("peinitctl-timeline.svg") << svg_text;
    pt::ptree doc;
    std::istringstream svg_in(svg_text);
    ASSERT_NO_THROW(pt::read_xml(svg_in, doc)) << svg_text;
    int bars = 0;
    for (const auto& [tag, node] : doc.get_child("svg")) {
        if (tag == "rect" && node.get<std::string>("<xmlattr>.class", "") == "bar") ++bars;
    }
    EXPECT_EQ(bars, 6);

    // lock as nobody on a locked kernel: refused all the same.
    const Section& lock = sections["lock"];
    EXPECT_EQ(lock.rc, 1);
    EXPECT_NE(lock.Text().find("peinitctl: lock refused: SeTcbPrivilege (CAP_SYS_ADMIN) required"),
              std::string::npos)
        << lock.Text();
}

TEST_F(PeinitctlBoot, RuntimeLock) {
    std::string console;
    auto sections = Boot("peinitctl-runtime", console);
    ASSERT_TRUE(sections.count("nobody-lock")) << console;

    const Section& refused = sections["nobody-lock"];
    EXPECT_EQ(refused.rc, 1);
    EXPECT_NE(
        refused.Text().find("peinitctl: lock refused: SeTcbPrivilege (CAP_SYS_ADMIN) required"),
        std::string::npos)
        << refused.Text();
    TestJson before(sections["nobody-status"].Text());
    EXPECT_EQ(sections["nobody-status"].rc, 0) << sections["nobody-status"].Text();
    EXPECT_TRUE(before.At("lock.locked").IsBool());
    EXPECT_EQ(before.Bool("lock.locked"), false);  // the flag stayed 0
    EXPECT_TRUE(before.At("lock.requested").IsBool());
    EXPECT_EQ(before.Bool("lock.requested"), false);

    const Section& locked = sections["root-lock"];
    EXPECT_EQ(locked.rc, 0) << locked.Text();
    EXPECT_NE(locked.Text().find("module_lockdown(QUERY)=1, kernel.module_loading_locked=1"),
              std::string::npos)
        << locked.Text();
    TestJson after(sections["root-status"].Text());
    EXPECT_EQ(sections["root-status"].rc, 0) << sections["root-status"].Text();
    EXPECT_EQ(after.Bool("lock.locked"), true);
    EXPECT_EQ(after.Str("lock.trigger"), "runtime-syscall");
    EXPECT_EQ(after.Str("lock.set_by_from"), "kernel-log");
    EXPECT_EQ(after.Str("lock.comm"), "peinitctl");
    EXPECT_GT(after.Int("lock.pid"), 1);
}

}  // namespace
