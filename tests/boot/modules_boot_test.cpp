// Module-stage boot tests (issues 5 and 6): whole images built by peinit-image, whose modules
// ship only inside signed packages, booted in QEMU. The probe service (modules_probe.c) prints
// /proc/modules, sig_enforce and /run/peinit/modules.json on the results channel and then powers
// the machine off; each
// ctest test is one gtest case (the slow-modules case boots twice).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "image_boot.h"
#include "peinit/record/modules.h"

#ifndef PEINIT_SOURCE_DIR
#error "PEINIT_SOURCE_DIR must be defined"
#endif
#ifndef PEINIT_PKG_TOOL
#error "PEINIT_PKG_TOOL must be defined"
#endif

namespace fs = std::filesystem;

namespace peinit::testing {
namespace {


// What the probe printed.
struct ProbeOutput {
  std::map<std::string, std::string> proc_modules;  // name -> state
  std::string sig_enforce;
  std::string record;                               // /run/peinit/modules.json
  bool done = false;
  // Record: module name -> status, package; and the summary's numbers.
  std::map<std::string, std::string> status;
  std::map<std::string, std::string> package;
  std::map<std::string, std::string> errno_name;
  std::vector<peinit::ModuleRow> rows;  // the record's module rows
  std::vector<peinit::ModulesRecord::Package> packages;  // the record's packages
};

ProbeOutput Parse(const ImageBootResult& r) {
  ProbeOutput p;
  for (const auto& line : r.qemu.result_lines()) {
    if (line.starts_with("PROC_MODULE ")) {
      std::istringstream in(line.substr(12));
      std::string name, state;
      in >> name >> state;
      p.proc_modules[name] = state;
    } else if (line.starts_with("SIG_ENFORCE ")) {
      p.sig_enforce = line.substr(12);
    } else if (line.starts_with("RECORD ")) {
      p.record += line.substr(7) + "\n";
    } else if (line == "MODULES_PROBE done") {
      p.done = true;
    }
  }
  // The module rows of the record, read as the typed record peinitctl reads.
  if (!p.record.empty()) {
    auto record = peinit::ModulesRecord::FromJson(p.record, "modules.json");
    EXPECT_TRUE(record) << record.error().message() << "\n" << p.record;
    if (record) {
      p.rows = record->modules;
      p.packages = record->packages;
      for (const auto& m : record->modules) {
        p.errno_name[m.name] = m.errno_name;
        p.package[m.name] = m.package;
        p.status[m.name] = m.StatusName();
      }
    }
  }
  return p;
}

// "modules done ok=N failed=M skipped=K blacklisted=B ms=T workers=W" -> key -> value.
std::map<std::string, long> ModulesDone(const ImageBootResult& r) {
  std::map<std::string, long> out;
  auto lines = r.Grep("modules done ok=");
  if (lines.empty()) return out;
  static const std::regex kPair(R"((\w+)=(\d+))");
  const std::string& line = lines.back();
  for (std::sregex_iterator it(line.begin(), line.end(), kPair), end; it != end; ++it) {
    out[(*it)[1]] = std::stol((*it)[2]);
  }
  return out;
}

// Index of the first console line containing `needle`, or -1.
long LineOf(const ImageBootResult& r, const std::string& needle) {
  auto lines = r.qemu.lines();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find(needle) != std::string::npos) return static_cast<long>(i);
  }
  return -1;
}

// The image.toml head shared by the peinit-kernel cases: the probe and its unit.
std::string ProbeFiles() {
  return "[[files]]\nsrc = \"@BUILD@/tests/boot/modules_probe\"\ndst = \"/usr/bin/modules_probe\"\n";
}

std::string TestModule(const std::string& kernel_dir, const std::string& name) {
  return "\"" + kernel_dir + "/test-modules/" + name + ".ko\"";
}

// The out-of-tree test modules load in dependency order from the image's package, a failing
// init is reported with its errno without stopping the rest, its hard dependent is skipped with a
// reason naming it, and a blacklisted module stays out.
TEST(ModulesBoot, TestModulesOrderFailureBlacklist) {
  std::string kdir = KernelDirFor("peinit");
  ASSERT_FALSE(kdir.empty()) << "PEINIT_KERNEL_DIR is not set";
  ImageBoot boot;
  boot.name = "modules-test";
  boot.image_toml = "kernel = \"peinit\"\n"
                    "units = [\"@SRC@/tests/boot/images/modules-probe/units\", \"@CASE@/units\"]\n"
                    "hive = \"@CASE@/hive.toml\"\n"
                    "extra_modules = [" +
                    TestModule(kdir, "peinit_test_provider") + ", " +
                    TestModule(kdir, "peinit_test_consumer") + ", " +
                    TestModule(kdir, "peinit_test_fail") + ", " +
                    TestModule(kdir, "peinit_test_fail_dep") + ", " +
                    TestModule(kdir, "peinit_test_param") + "]\n" + ProbeFiles();
  auto r = BuildAndBoot(boot);
  ASSERT_TRUE(r.build_error.empty()) << r.build_error;
  ProbeOutput p = Parse(r);
  ASSERT_TRUE(p.done) << Explain(r);

  // Dependency order: the provider is live before the consumer's init runs.
  long provider = LineOf(r, "peinit_test_provider: loaded");
  long consumer = LineOf(r, "peinit_test_consumer: loaded, provider value=42");
  EXPECT_GE(provider, 0) << Explain(r);
  EXPECT_GT(consumer, provider) << Explain(r);
  EXPECT_EQ(p.proc_modules["peinit_test_provider"], "Live");
  EXPECT_EQ(p.proc_modules["peinit_test_consumer"], "Live");
  EXPECT_EQ(p.proc_modules["dummy"], "Live");
  EXPECT_EQ(p.package["peinit_test_consumer"], "image.pkg");
  // The package was mapped where the initramfs unpacked it (PID 1 made its directory a
  // read-only bind mount first), not copied.
  ASSERT_EQ(p.packages.size(), 1u) << p.record;
  EXPECT_TRUE(p.packages[0].in_place) << p.record;
  EXPECT_EQ(r.Grep("they are copied before they are checked").size(), 0u) << Explain(r);
  EXPECT_EQ(r.Grep("package image.pkg verified:").size(), 1u) << Explain(r);
  for (const auto& line : r.Grep("package image.pkg verified:")) {
    EXPECT_NE(line.find("read=in-place"), std::string::npos) << line;
  }

  // The failing module: reported with its errno; only its dependent is affected.
  EXPECT_TRUE(r.Has("module peinit_test_fail failed: ")) << Explain(r);
  EXPECT_FALSE(r.Grep("(ENODEV)").empty()) << Explain(r);
  EXPECT_EQ(p.status["peinit_test_fail"], "failed");
  EXPECT_EQ(p.errno_name["peinit_test_fail"], "ENODEV");
  EXPECT_EQ(p.proc_modules.count("peinit_test_fail"), 0u);

  // Its hard dependent is never attempted: skipped, naming the failed dependency and its errno.
  EXPECT_TRUE(r.Has("module peinit_test_fail_dep skipped: dependency peinit_test_fail failed (ENODEV"))
      << Explain(r);
  EXPECT_EQ(p.status["peinit_test_fail_dep"], "skipped") << p.record;
  EXPECT_EQ(p.proc_modules.count("peinit_test_fail_dep"), 0u);
  EXPECT_FALSE(r.Has("peinit_test_fail_dep: loaded")) << "its init ran";

  // The blacklisted module stays out and the reason names the hive.
  EXPECT_TRUE(r.Has("module peinit_test_param blacklisted (hive")) << Explain(r);
  EXPECT_EQ(p.status["peinit_test_param"], "blacklisted");
  EXPECT_EQ(p.proc_modules.count("peinit_test_param"), 0u);
  for (const auto& line : r.Grep("peinit_test_param: ")) {
    EXPECT_NE(line.find("RECORD "), std::string::npos) << "its init ran: " << line;
  }

  auto done = ModulesDone(r);
  EXPECT_EQ(done["ok"], 3) << Explain(r);
  EXPECT_EQ(done["failed"], 1);
  EXPECT_EQ(done["skipped"], 1);
  EXPECT_EQ(done["blacklisted"], 1);
  EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// Eight independent 500 ms modules (delay_ms=500 from the units' options): with four workers the
// stage takes well under half of the strictly sequential time (one worker).
TEST(ModulesBoot, SlowModulesLoadInParallel) {
  std::string kdir = KernelDirFor("peinit");
  ASSERT_FALSE(kdir.empty()) << "PEINIT_KERNEL_DIR is not set";
  std::string extra;
  for (int i = 1; i <= 8; ++i) {
    extra += (i > 1 ? ", " : "") + TestModule(kdir, "peinit_test_slow" + std::to_string(i));
  }
  std::map<int, long> ms;    // the stage's total (modules done ... ms=)
  std::map<int, long> span;  // first load start to last load end, from the record (us)
  for (int workers : {4, 1}) {
    ImageBoot boot;
    boot.name = "modules-slow-w" + std::to_string(workers);
    boot.image_toml = "kernel = \"peinit\"\n"
                      "units = [\"@SRC@/tests/boot/images/modules-probe/units\", "
                      "\"@SRC@/tests/boot/images/modules-slow/units\"]\n"
                      "extra_modules = [" +
                      extra + "]\n" + ProbeFiles();
    boot.append = "peinit.workers=" + std::to_string(workers);
    auto r = BuildAndBoot(boot);
    ASSERT_TRUE(r.build_error.empty()) << r.build_error;
    ProbeOutput p = Parse(r);
    ASSERT_TRUE(p.done) << Explain(r);
    auto done = ModulesDone(r);
    EXPECT_EQ(done["ok"], 8) << Explain(r);
    EXPECT_EQ(done["workers"], workers) << Explain(r);
    for (int i = 1; i <= 8; ++i) {
      const std::string m = "peinit_test_slow" + std::to_string(i);
      EXPECT_EQ(p.proc_modules[m], "Live") << i;
      EXPECT_TRUE(r.Has(m + ": init start delay_ms=500")) << "the unit's options reach " << m;
    }
    long first = -1, last = 0;
    std::vector<std::pair<long, int>> edges;  // (time, +1 start / -1 end)
    for (const auto& m : p.rows) {
      if (!m.name.starts_with("peinit_test_slow")) continue;
      long start = m.start_us, duration = m.duration_us;
      first = first < 0 ? start : std::min(first, start);
      last = std::max(last, start + duration);
      edges.push_back({start, 1});
      edges.push_back({start + duration, -1});
    }
    EXPECT_EQ(edges.size(), 16u) << "rows " << p.rows.size() << "\n" << p.record;
    std::sort(edges.begin(), edges.end());  // an end sorts before a start at the same time
    int running = 0, most = 0;
    for (const auto& e : edges) most = std::max(most, running += e.second);
    EXPECT_EQ(most, workers) << "loads in flight at once\n" << p.record;
    ms[workers] = done["ms"];
    span[workers] = (last - first) / 1000;
    std::cout << "[ figures ] slow modules: workers=" << workers << " stage ms=" << done["ms"]
              << " load span ms=" << span[workers] << " (boot " << r.qemu.describe() << ")\n";
  }
  EXPECT_GE(ms[1], 4000) << "eight sequential 500 ms inits";
  // Four at a time: ideally a quarter of the sequential time. Each load also verifies a
  // signature and relocates under TCG on a shared 2-core host, and the stage total adds the
  // package check and planning (150-750 ms), so the bound is generous: the whole stage under
  // half of the sequential stage, the loads alone under 40 % of theirs.
  EXPECT_LT(ms[4] * 2, ms[1]) << "workers=4: " << ms[4] << " ms, workers=1: " << ms[1];
  EXPECT_LT(span[4] * 10, span[1] * 4) << "workers=4: " << span[4] << " ms, workers=1: " << span[1];
}

// Debian's kernel with its own signed modules, packed into the image's package: the whole
// real set loads, and /proc/modules agrees with the stage's record and summary.
TEST(ModulesBoot, DebianRealModuleSetMatchesProcModules) {
  ImageBoot boot;
  boot.name = "modules-debian";
  boot.kernel = "debian";
  // ext4's crc32c soft dependency resolves to crc32c_intel too, whose init needs SSE4.2:
  // QEMU's default TCG CPU (qemu64) lacks it (ENODEV), "max" has it.
  boot.qemu_args = {"-cpu", "max"};
  boot.image_toml = "kernel = \"debian\"\n"
                    "units = [\"@SRC@/tests/boot/images/modules-probe/units\", \"@CASE@/units\"]\n" +
                    ProbeFiles();
  auto r = BuildAndBoot(boot);
  ASSERT_TRUE(r.build_error.empty()) << r.build_error;
  ProbeOutput p = Parse(r);
  ASSERT_TRUE(p.done) << Explain(r);
  auto done = ModulesDone(r);
  EXPECT_EQ(done["failed"], 0) << Explain(r);
  EXPECT_EQ(done["skipped"], 0) << Explain(r);
  std::set<std::string> loaded;
  long builtin = 0;
  for (const auto& [name, status] : p.status) {
    if (status == "loaded") loaded.insert(name);
    if (status == "builtin" || status == "already-loaded") ++builtin;
  }
  EXPECT_EQ(static_cast<long>(loaded.size()) + builtin, done["ok"]) << p.record;
  for (const char* m : {"ext4", "jbd2", "mbcache", "bridge", "stp", "llc", "virtio_net",
                        "net_failover", "failover"}) {
    EXPECT_TRUE(loaded.count(m)) << m << "\n" << p.record;
  }
  for (const auto& m : loaded) {
    EXPECT_EQ(p.proc_modules[m], "Live") << m << " is loaded in the record, not in /proc/modules";
    EXPECT_EQ(p.package[m], "image.pkg") << m;
  }
  std::cout << "[ figures ] debian real set: " << loaded.size() << " modules loaded, ms="
            << done["ms"] << " workers=" << done["workers"] << "\n";
  EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// A good and a tampered pre-built package (the tampered one is a copy of a good package with
// one payload byte flipped, shipped with expect = "rejected"): the good package's modules
// load, none of the tampered one's do, and the console names the package and the reason.
TEST(ModulesBoot, TamperedPackageIsRejectedGoodOneLoads) {
  std::string kdir = KernelDirFor("peinit");
  ASSERT_FALSE(kdir.empty()) << "PEINIT_KERNEL_DIR is not set";
  ScratchDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const std::string pkg = std::string("'") + PEINIT_PKG_TOOL + "'";
  const std::string kver = KernelRelease(kdir);
  std::string log;
  ASSERT_EQ(Sh(pkg + " keygen --out-dir " + tmp.path + " --name vendor", log), 0) << log;
  ASSERT_EQ(Sh(pkg + " create --name good --version 1 --kver " + kver + " --sign-key " +
                   tmp.path + "/vendor.key -o " + tmp.path + "/good.pkg " + kdir +
                   "/test-modules/peinit_test_provider.ko " + kdir +
                   "/test-modules/peinit_test_consumer.ko",
               log),
            0)
      << log;
  ASSERT_EQ(Sh(pkg + " create --name bad --version 1 --kver " + kver + " --sign-key " +
                   tmp.path + "/vendor.key -o " + tmp.path + "/bad.pkg " + kdir +
                   "/test-modules/peinit_test_slow1.ko " + kdir +
                   "/test-modules/peinit_test_slow2.ko",
               log),
            0)
      << log;
  // Flip one byte inside the first module's payload (past its ELF header).
  std::string bad = ReadFile(tmp.path + "/bad.pkg");
  size_t elf = bad.find("\x7f" "ELF");
  ASSERT_NE(elf, std::string::npos);
  bad[elf + 300] = static_cast<char>(bad[elf + 300] ^ 0x01);
  std::ofstream(tmp.path + "/bad.pkg", std::ios::binary | std::ios::trunc) << bad;
  ASSERT_NE(Sh(pkg + " verify --trust " + tmp.path + " " + tmp.path + "/bad.pkg", log), 0);

  ImageBoot boot;
  boot.name = "modules-tampered";
  boot.image_toml =
      "kernel = \"peinit\"\n"
      "units = [\"@SRC@/tests/boot/images/modules-probe/units\", \"@CASE@/units\"]\n"
      "keys = [\"" + tmp.path + "/vendor.pub\"]\n"
      "extra_modules = [" + TestModule(kdir, "peinit_test_provider") + ", " +
      TestModule(kdir, "peinit_test_consumer") + ", " + TestModule(kdir, "peinit_test_slow1") +
      ", " + TestModule(kdir, "peinit_test_slow2") + "]\n" + ProbeFiles() +
      "[[packages]]\npath = \"" + tmp.path + "/good.pkg\"\n"
      "[[packages]]\npath = \"" + tmp.path + "/bad.pkg\"\nexpect = \"rejected\"\n";
  auto r = BuildAndBoot(boot);
  ASSERT_TRUE(r.build_error.empty()) << r.build_error;
  ProbeOutput p = Parse(r);
  ASSERT_TRUE(p.done) << Explain(r);

  EXPECT_TRUE(r.Has("package good.pkg verified: good 1")) << Explain(r);
  EXPECT_TRUE(r.Has("package bad.pkg rejected: hash-mismatch: modules/peinit_test_slow1.ko"))
      << Explain(r);
  EXPECT_EQ(p.proc_modules["peinit_test_provider"], "Live");
  EXPECT_EQ(p.proc_modules["peinit_test_consumer"], "Live");
  EXPECT_EQ(p.package["peinit_test_consumer"], "good.pkg");
  EXPECT_EQ(p.package["peinit_test_provider"], "good.pkg");
  EXPECT_EQ(p.proc_modules["dummy"], "Live");
  EXPECT_EQ(p.package["dummy"], "image.pkg");
  for (const char* m : {"peinit_test_slow1", "peinit_test_slow2"}) {
    EXPECT_EQ(p.proc_modules.count(m), 0u) << m;
    EXPECT_EQ(p.status[m], "failed") << m;
    EXPECT_TRUE(r.Has(std::string("module ") + m + " failed: package rejected (bad.pkg: hash-mismatch"))
        << m << "\n" << Explain(r);
  }
  EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

// SigningPolicy=enforce: a module signed by a key the kernel does not know, inside a validly
// signed package, is refused by the kernel (EKEYREJECTED); a module signed with the kernel's
// own key loads.
TEST(ModulesBoot, EnforceRejectsModuleSignedByUnknownKey) {
  std::string kdir = KernelDirFor("peinit");
  ASSERT_FALSE(kdir.empty()) << "PEINIT_KERNEL_DIR is not set";
  ScratchDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  std::string log;
  const std::string t = tmp.path;
  ASSERT_EQ(Sh("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=peinit-throwaway "
               "-keyout " + t + "/throwaway.pem -outform DER -out " + t + "/throwaway.x509",
               log),
            0)
      << log;
  ASSERT_EQ(Sh("cp " + kdir + "/test-modules/unsigned/peinit_test_param.ko " + t + "/ && " +
                   kdir + "/build/scripts/sign-file sha256 " + t + "/throwaway.pem " + t +
                   "/throwaway.x509 " + t + "/peinit_test_param.ko",
               log),
            0)
      << log;

  ImageBoot boot;
  boot.name = "modules-enforce";
  boot.image_toml =
      "kernel = \"peinit\"\n"
      "units = [\"@SRC@/tests/boot/images/modules-probe/units\", \"@CASE@/units\"]\n"
      "hive = \"@CASE@/hive.toml\"\n"
      "extra_modules = [\"" + t + "/peinit_test_param.ko\", " +
      TestModule(kdir, "peinit_test_provider") + "]\n" + ProbeFiles();
  auto r = BuildAndBoot(boot);
  ASSERT_TRUE(r.build_error.empty()) << r.build_error;
  ProbeOutput p = Parse(r);
  ASSERT_TRUE(p.done) << Explain(r);
  EXPECT_TRUE(r.Has("modules signing policy=enforce(hive) sig_enforce=Y")) << Explain(r);
  EXPECT_EQ(p.sig_enforce, "Y");
  EXPECT_TRUE(r.Has("package image.pkg verified")) << Explain(r);
  EXPECT_TRUE(r.Has("module peinit_test_param failed: ")) << Explain(r);
  EXPECT_FALSE(r.Grep("(EKEYREJECTED)").empty()) << Explain(r);
  EXPECT_EQ(p.status["peinit_test_param"], "failed");
  EXPECT_EQ(p.errno_name["peinit_test_param"], "EKEYREJECTED");
  EXPECT_EQ(p.proc_modules.count("peinit_test_param"), 0u);
  EXPECT_EQ(p.proc_modules["peinit_test_provider"], "Live");
  EXPECT_TRUE(r.qemu.clean_exit()) << Explain(r);
}

}  // namespace
}  // namespace peinit::testing
