// Boot tests of the patched kernel (kernel/build output): boots it under
// QEMU with an initramfs whose /init is kernel_probe, then asserts on every
// "PROBE <name> ok|FAIL <detail>" line the guest wrote to the results channel (qemu_runner.h).
//
// Three boots: "main" (signing floor warn, lockdown, LOCK against the loads
// and unloads in flight, enforcement), "autoload" (DISABLE_AUTOLOAD,
// SEAL_MODPROBE, rate-limited and encoded refusal records) and "enforce"
// (module.sig_enforce=1).  The kernel is found through
// PEINIT_KERNEL_DIR (environment, set by ctest from the CMake cache
// variable of the same name); if it is empty every test fails.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "qemu_runner.h"

#ifndef PEINIT_KERNEL_DIR_DEFAULT
#define PEINIT_KERNEL_DIR_DEFAULT ""
#endif

namespace fs = std::filesystem;
using peinit::testing::QemuOptions;
using peinit::testing::QemuResult;

namespace {

const std::vector<std::string> kMainChecks = {
    "setup_modprobe_helper",
    "initial_unlocked",
    "sysctl_mode_0444",
    "initial_untainted",
    "signed_loads",
    "signed_not_tainted",
    "signed_dependency_loads",
    "tampered_rejected",
    "tampered_not_loaded",
    "unsigned_loads",
    "unsigned_taints",
    "unsigned_param_printed",
    "failing_init_errno",
    "prelock_force_unload_same_as_plain",
    "prelock_unload_works",
    "prelock_demand_load_runs_helper",
    "capsysmodule_drop",
    "capsysmodule_can_load",
    "capsysmodule_lock_eperm",
    "capsysmodule_child_exit",
    "capsysmodule_flag_unchanged",
    "refusal_logged",
    "refusal_audited",
    "nobody_setuid",
    "nobody_query",
    "nobody_query_with_trigger",
    "nobody_sysctl_read",
    "nobody_lock_eperm",
    "nobody_child_exit",
    "nobody_flag_unchanged",
    "einval_unknown_op",
    "einval_unknown_trigger",
    "einval_lock_without_trigger",
    "einval_query_unknown_trigger",
    "einval_flag_unchanged",
    "inflight_unload_target_loads",
    "inflight_caught",
    "root_lock",
    "inflight_lock_waited",
    "inflight_load_live",
    "inflight_unload_finished",
    "inflight_demand_loading_init_live",
    "inflight_nothing_half_done",
    "inflight_request_module_refused",
    "inflight_calls_succeeded",
    "inflight_new_load_refused_at_once",
    "inflight_lock_logged_after_them",
    "inflight_nothing_later",
    "locked_state",
    "lock_logged",
    "lock_audited",
    "sysctl_write_fails",
    "second_lock_noop",
    "still_locked",
    "second_lock_logged",
    "locked_finit_module",
    "locked_finit_not_loaded",
    "locked_init_module",
    "locked_init_module_checked_first",
    "locked_delete_module",
    "locked_force_delete_same",
    "locked_delete_checked_first",
    "locked_af_packet_eafnosupport",
    "locked_helper_not_started",
    "final_locked",
};

const std::vector<std::string> kEnforceChecks = {
    "setup_modprobe_helper",
    "enforce_param_set",
    "enforce_initial_unlocked",
    "enforce_unsigned_rejected",
    "enforce_tampered_rejected",
    "enforce_signed_loads",
    "enforce_not_tainted",
    "unlocked_af_packet_demand_load",
};

// Issue 15: DISABLE_AUTOLOAD and SEAL_MODPROBE, and the rate limit and encoding of
// refusal records.
const std::vector<std::string> kAutoloadChecks = {
    "setup_modprobe_helper",
    "new_ops_initially_unset",
    "new_sysctls_mode_0444",
    "autoload_enabled_demand_load",
    "nobody_disable_autoload_eperm",
    "nobody_seal_modprobe_eperm",
    "nobody_reads_new_states",
    "nobody_new_ops_child_exit",
    "nobody_new_ops_flags_unchanged",
    "disable_autoload_refusal_logged",
    "seal_modprobe_refusal_audited",
    "new_ops_einval",
    "new_ops_einval_flags_unchanged",
    "root_disable_autoload",
    "autoload_disabled_state",
    "disable_autoload_logged",
    "disable_autoload_audited",
    "disabled_demand_load_fails_at_once",
    "disabled_explicit_load_works",
    "second_disable_autoload_noop",
    "root_seal_modprobe",
    "modprobe_sealed_state",
    "seal_modprobe_logged",
    "seal_modprobe_audited",
    "sealed_modprobe_write_eperm",
    "second_seal_noop",
    "new_ops_final_state",
    "inject_child_refused",
    "inject_log_encoded",
    "inject_audit_encoded",
    "flood_child_refused",
    "flood_log_rate_limited",
    "flood_audit_rate_limited",
    // Issue 24 point 6: refusals are rate-limited per uid (kernel patch 0006), never for uid 0.
    "peruid_children_refused",
    "peruid_flood_limited",
    "peruid_other_uid_recorded",
    "peruid_root_never_limited",
    "peruid_fill_child_refused",
    "peruid_reused_entry_reports_count",
    "peruid_table_full_overflow_bounded",
    "peruid_entry_kept_for_its_uid",
};

struct Check {
  bool ok = false;
  std::string detail;
  int count = 0;
};

struct ProbeRun {
  std::string setup_error;  // non-empty: nothing booted, every test fails with it
  QemuResult qemu;
  std::map<std::string, Check> checks;
  std::vector<std::string> order;
  std::string mode;  // from "PROBE-MODE <mode>"
  bool saw_end = false;
  std::string serial_log;

  std::string where() const {
    return "\n  qemu: " + qemu.describe() + "\n  serial log: " + serial_log +
           "\n  results channel: " + serial_log + ".results";
  }
};

std::string kernel_dir() {
  const char* env = std::getenv("PEINIT_KERNEL_DIR");
  if (env != nullptr && *env != '\0') return env;
  return PEINIT_KERNEL_DIR_DEFAULT;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Finds <name>.ko below dir (the in-tree modules of modroot).
fs::path find_module(const fs::path& dir, const std::string& name) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file() && it->path().filename() == name + ".ko") return it->path();
  }
  return {};
}

// Builds the initramfs for the probe; returns an error message or "".
std::string build_initramfs(const fs::path& kdir, const fs::path& work, const fs::path& out) {
  const fs::path stage = work / "root";
  std::error_code ec;
  fs::remove_all(stage, ec);
  for (const char* d : {"sbin", "modules/signed", "modules/unsigned", "modules/tampered",
                        "helper-modules", "proc", "sys", "dev"})
    fs::create_directories(stage / d);

  auto copy = [&](const fs::path& from, const fs::path& to) -> std::string {
    std::error_code cec;
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, cec);
    if (cec) return "cannot copy " + from.string() + " to " + to.string() + ": " + cec.message();
    return "";
  };
  std::string err;
  if (!(err = copy(KERNEL_PROBE_PATH, stage / "init")).empty()) return err;
  if (!(err = copy(MODPROBE_HELPER_PATH, stage / "sbin/test-modprobe")).empty()) return err;
  fs::permissions(stage / "init", fs::perms::owner_all | fs::perms::group_exec |
                                      fs::perms::others_exec);
  fs::permissions(stage / "sbin/test-modprobe", fs::perms::owner_all | fs::perms::group_exec |
                                                    fs::perms::others_exec);

  const std::vector<std::string> test_modules = {
      "peinit_test_provider", "peinit_test_consumer", "peinit_test_fail",
      "peinit_test_param",    "peinit_test_slow1",    "peinit_test_slow2",
      "peinit_test_slow3",    "peinit_test_slow4",    "peinit_test_slow5",
      "peinit_test_slow6",    "peinit_test_reqmod"};
  for (const auto& m : test_modules) {
    if (!(err = copy(kdir / "test-modules" / (m + ".ko"), stage / "modules/signed" / (m + ".ko")))
             .empty())
      return err;
  }
  if (!(err = copy(kdir / "test-modules/unsigned/peinit_test_param.ko",
                   stage / "modules/unsigned/peinit_test_param.ko"))
           .empty())
    return err;
  if (!(err = copy(kdir / "test-modules/tampered/peinit_test_param.ko",
                   stage / "modules/tampered/peinit_test_param.ko"))
           .empty())
    return err;

  std::string kver = read_text(kdir / "kver");
  kver.erase(kver.find_last_not_of(" \n\r\t") + 1);
  const fs::path moddir = kdir / "modroot/lib/modules" / kver;
  // Demand-load aliases the helper serves: net-pf-17 (AF_PACKET), net-pf-38 (AF_ALG).
  for (auto [alias, mod] : std::vector<std::pair<std::string, std::string>>{
           {"net-pf-17", "af_packet"}, {"net-pf-38", "af_alg"}}) {
    fs::path ko = find_module(moddir, mod);
    if (ko.empty()) return mod + ".ko not found under " + moddir.string();
    if (!(err = copy(ko, stage / "helper-modules" / (alias + ".ko"))).empty()) return err;
  }

  std::string cmd = "cd " + shell_quote(stage.string()) +
                    " && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet > " +
                    shell_quote(out.string());
  int rc = std::system(cmd.c_str());
  if (rc != 0) return "creating the initramfs with cpio failed (status " + std::to_string(rc) + ")";
  return "";
}

ProbeRun boot_probe(const std::string& mode, const std::string& extra_append) {
  ProbeRun run;
  const std::string kdir_s = kernel_dir();
  if (kdir_s.empty()) {
    run.setup_error =
        "PEINIT_KERNEL_DIR is empty: the boot tests need the patched kernel. Build it with "
        "kernel/build and configure with -DPEINIT_KERNEL_DIR=\"$(kernel/build | tail -n1)\" "
        "(or export PEINIT_KERNEL_DIR).";
    return run;
  }
  const fs::path kdir(kdir_s);
  for (const char* f : {".complete", "bzImage", "kver"}) {
    if (!fs::exists(kdir / f)) {
      run.setup_error = "PEINIT_KERNEL_DIR=" + kdir_s + " is not a complete kernel/build cache "
                        "directory (missing " + f + ")";
      return run;
    }
  }

  const fs::path work = fs::absolute(fs::path("boot-artifacts") / ("kernel-" + mode));
  std::error_code ec;
  fs::create_directories(work, ec);
  if (ec) {
    run.setup_error = "cannot create " + work.string() + ": " + ec.message();
    return run;
  }
  const fs::path initrd = work / "initramfs.cpio";
  if (std::string err = build_initramfs(kdir, work, initrd); !err.empty()) {
    run.setup_error = "initramfs: " + err;
    return run;
  }

  QemuOptions opts;
  opts.kernel = (kdir / "bzImage").string();
  opts.initrd = initrd.string();
  opts.append = "probe_mode=" + mode + (extra_append.empty() ? "" : " " + extra_append);
  opts.smp = 2;
  opts.timeout = std::chrono::seconds(120);
  opts.log_file = (work / "serial.log").string();
  run.serial_log = opts.log_file;
  run.qemu = peinit::testing::run_qemu(opts);

  // The channel carries nothing but the probe's lines: each starts with its keyword.
  for (const std::string& line : run.qemu.result_lines()) {
    if (line.starts_with("PROBE-END")) {
      run.saw_end = true;
      continue;
    }
    if (line.starts_with("PROBE-MODE ")) {
      run.mode = line.substr(11);
      continue;
    }
    if (!line.starts_with("PROBE ")) continue;
    std::istringstream in(line.substr(6));
    std::string name, verdict, detail;
    in >> name >> verdict;
    std::getline(in, detail);
    if (!detail.empty() && detail[0] == ' ') detail.erase(0, 1);
    Check& c = run.checks[name];
    if (c.count++ == 0) run.order.push_back(name);
    c.ok = verdict == "ok";
    c.detail = verdict + " " + detail;
  }
  return run;
}

const ProbeRun& probe(const std::string& mode) {
  static std::map<std::string, ProbeRun> runs;
  auto it = runs.find(mode);
  if (it == runs.end()) {
    std::string extra = mode == "enforce" ? "module.sig_enforce=1" : "";
    it = runs.emplace(mode, boot_probe(mode, extra)).first;
  }
  return it->second;
}

void expect_boot_completed(const std::string& mode) {
  const ProbeRun& r = probe(mode);
  ASSERT_TRUE(r.setup_error.empty()) << r.setup_error;
  EXPECT_EQ(r.mode, mode) << "the guest did not report probe mode " << mode << r.where();
  EXPECT_TRUE(r.saw_end) << "the guest never printed PROBE-END" << r.where();
  EXPECT_TRUE(r.qemu.clean_exit())
      << "reboot(RB_POWER_OFF) in the guest should end QEMU with status 0" << r.where();
}

void expect_only_known_checks(const std::string& mode, const std::vector<std::string>& known) {
  const ProbeRun& r = probe(mode);
  ASSERT_TRUE(r.setup_error.empty()) << r.setup_error;
  std::set<std::string> k(known.begin(), known.end());
  for (const auto& name : r.order) {
    EXPECT_TRUE(k.count(name)) << "the probe reported a check this test does not know: " << name;
    EXPECT_EQ(r.checks.at(name).count, 1) << "check reported more than once: " << name;
  }
}

void expect_check(const std::string& mode, const std::string& name) {
  const ProbeRun& r = probe(mode);
  ASSERT_TRUE(r.setup_error.empty()) << r.setup_error;
  auto it = r.checks.find(name);
  ASSERT_NE(it, r.checks.end()) << "the guest never reported check '" << name << "'" << r.where();
  EXPECT_TRUE(it->second.ok) << "PROBE " << name << " " << it->second.detail << r.where();
}

std::string param_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

}  // namespace

// ---- main boot: signing floor warn, module_lockdown, enforcement ----------

TEST(MainBoot, CompletesAndPowersOff) { expect_boot_completed("main"); }
TEST(MainBoot, ReportsOnlyKnownChecks) { expect_only_known_checks("main", kMainChecks); }

class MainBootCheck : public ::testing::TestWithParam<std::string> {};
TEST_P(MainBootCheck, Passed) { expect_check("main", GetParam()); }
INSTANTIATE_TEST_SUITE_P(Probe, MainBootCheck, ::testing::ValuesIn(kMainChecks), param_name);

// ---- autoload boot: the one-way autoload gates, refusal records -------------

TEST(AutoloadBoot, CompletesAndPowersOff) { expect_boot_completed("autoload"); }
TEST(AutoloadBoot, ReportsOnlyKnownChecks) { expect_only_known_checks("autoload", kAutoloadChecks); }

class AutoloadBootCheck : public ::testing::TestWithParam<std::string> {};
TEST_P(AutoloadBootCheck, Passed) { expect_check("autoload", GetParam()); }
INSTANTIATE_TEST_SUITE_P(Probe, AutoloadBootCheck, ::testing::ValuesIn(kAutoloadChecks),
                         param_name);

// ---- enforce boot: module.sig_enforce=1 ------------------------------------

TEST(EnforceBoot, CompletesAndPowersOff) { expect_boot_completed("enforce"); }
TEST(EnforceBoot, ReportsOnlyKnownChecks) { expect_only_known_checks("enforce", kEnforceChecks); }

class EnforceBootCheck : public ::testing::TestWithParam<std::string> {};
TEST_P(EnforceBootCheck, Passed) { expect_check("enforce", GetParam()); }
INSTANTIATE_TEST_SUITE_P(Probe, EnforceBootCheck, ::testing::ValuesIn(kEnforceChecks),
                         param_name);
