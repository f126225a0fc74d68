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

#include <boost/property_tree/json_parser.hpp>
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

namespace fs = std::filesystem;
namespace pt = boost::property_tree;

namespace {

using peinit::testing::Section;

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

    static pt::ptree Json(const Section& s) {
        pt::ptree t;
        std::istringstream in(s.Text());
        try {
            pt::read_json(in, t);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "not JSON: " << e.what() << "\n" << s.Text();
        }
        return t;
    }
};

TEST_F(PeinitctlBoot, Locked) {
    std::string console;
    auto sections = Boot("peinitctl-locked", console);
    ASSERT_TRUE(sections.count("status")) << console;

    // status --json as nobody, matching the image: hive lock, policy, module outcomes.
    const Section& status = sections["status"];
    EXPECT_EQ(status.rc, 0) << status.Text();
    pt::ptree t = Json(status);
    EXPECT_EQ(t.get<int>("version", 0), 1);
    EXPECT_EQ(t.get<int>("exit_code", -1), 0);
    EXPECT_EQ(t.get<bool>("lock.locked", false), true);
    EXPECT_EQ(t.get<std::string>("lock.mechanism", ""), "syscall");
    EXPECT_EQ(t.get<std::string>("lock.read_from", ""), "module_lockdown");
    EXPECT_EQ(t.get<std::string>("lock.trigger", ""), "registry");
    EXPECT_EQ(t.get<int>("lock.pid", 0), 1);
    EXPECT_EQ(t.get<bool>("lock.requested", false), true);
    EXPECT_EQ(t.get<std::string>("lock.requested_source", ""), "hive");
    EXPECT_GT(t.get<int64_t>("lock.boot_offset_ms", 0), 0);
    EXPECT_FALSE(t.get<std::string>("lock.wall_time", "").empty());
    EXPECT_EQ(t.get<std::string>("kernel.sig_enforce", ""), "0");
    EXPECT_EQ(t.get<std::string>("policy.hive.state", ""), "loaded");
    EXPECT_EQ(t.get<std::string>("policy.autoload.value", ""), "allow-list");
    EXPECT_EQ(t.get<std::string>("policy.autoload.source", ""), "hive");
    EXPECT_EQ(t.get<std::string>("policy.autoload_allowed..", "x"), "af_packet");
    EXPECT_EQ(t.get<std::string>("policy.signing.value", ""), "warn");
    ASSERT_EQ(t.get_child("policy.blacklist").size(), 1u);
    EXPECT_EQ(t.get_child("policy.blacklist").begin()->second.get<std::string>("module"), "minix");
    std::map<std::string, std::string> outcome;
    for (const auto& [k, m] : t.get_child("modules.list")) {
        outcome[m.get<std::string>("name")] = m.get<std::string>("status");
        if (m.get<std::string>("status") == "loaded") {
            EXPECT_GT(m.get<int64_t>("duration_us"), 0) << m.get<std::string>("name");
            EXPECT_EQ(m.get<std::string>("package"), "boot.pkg");
        }
    }
    EXPECT_EQ(outcome, (std::map<std::string, std::string>{{"loop", "loaded"},
                                                           {"dummy", "loaded"},
                                                           {"bridge", "loaded"},
                                                           {"stp", "loaded"},
                                                           {"llc", "loaded"},
                                                           {"minix", "blacklisted"}}));
    EXPECT_EQ(t.get<int>("modules.summary.ok", 0), 5);

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
    pt::ptree before = Json(sections["nobody-status"]);
    EXPECT_EQ(sections["nobody-status"].rc, 0) << sections["nobody-status"].Text();
    EXPECT_EQ(before.get<bool>("lock.locked", true), false);  // the flag stayed 0
    EXPECT_EQ(before.get<bool>("lock.requested", true), false);

    const Section& locked = sections["root-lock"];
    EXPECT_EQ(locked.rc, 0) << locked.Text();
    EXPECT_NE(locked.Text().find("module_lockdown(QUERY)=1, kernel.module_loading_locked=1"),
              std::string::npos)
        << locked.Text();
    pt::ptree after = Json(sections["root-status"]);
    EXPECT_EQ(sections["root-status"].rc, 0) << sections["root-status"].Text();
    EXPECT_EQ(after.get<bool>("lock.locked", false), true);
    EXPECT_EQ(after.get<std::string>("lock.trigger", ""), "runtime-syscall");
    EXPECT_EQ(after.get<std::string>("lock.set_by_from", ""), "kernel-log");
    EXPECT_EQ(after.get<std::string>("lock.comm", ""), "peinitctl");
    EXPECT_GT(after.get<int>("lock.pid", 0), 1);
}

}  // namespace
