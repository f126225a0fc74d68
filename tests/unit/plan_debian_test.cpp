// The planner on Debian's real linux-image tree (kernel/debian-kernel, ~4000 modules), checked
// against modprobe itself.
//
// For each module, `modprobe --show-depends` (kmod 30, same libkmod, same configuration paths)
// prints what modprobe would load: one `insmod PATH` line per module file and one `builtin NAME`
// line per built-in, covering hard dependencies and soft pre/post dependencies of the module and
// of its dependencies. That set must equal the plan's closure (load + builtin entries), with the
// same .ko paths, and the plan's order must be valid: every module after all its hard
// dependencies and loadable soft pre dependencies, every soft post dependency after its module.
// What is not compared: modprobe's exact order (any valid order is fine for peinit's parallel
// loader) and options (Debian's tree ships no modprobe.d).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "peinit/core/plan.h"
#include "peinit/sys/kmod.h"
#include "tests/unit/fixture_roots.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;

// Deep and wide dependency chains across subsystems: file systems, network, virtualisation,
// sound (snd_sof_pci_intel_tgl: 34 modules), GPUs, InfiniBand, wireless, Bluetooth, device
// mapper, RAID, netfilter, USB storage.
const std::vector<std::string> kModules = {
    "ext4",        "btrfs",    "xfs",           "nfsv4",
    "cifs",        "bridge",   "vxlan",         "wireguard",
    "kvm_intel",   "kvm_amd",  "snd_hda_intel", "i915",
    "amdgpu",      "mlx5_ib",  "iwlmvm",        "btusb",
    "dm_crypt",    "raid456",  "nft_chain_nat", "nft_ct",
    "usb_storage", "uas",      "nouveau",       "ceph",
    "ocfs2",       "nvme_tcp", "ib_srp",        "snd_sof_pci_intel_tgl",
    "rbd",         "dm_raid",
};

struct Tree {
    fs::path root;
    std::string kver;
};

// The Debian fixture, or a failure (never a skip): the fixture is part of the test set-up.
Tree DebianTree() {
    std::string dir = PEINIT_DEBIAN_KERNEL_DIR;
    if (dir.empty()) {
        ADD_FAILURE() << "PEINIT_DEBIAN_KERNEL_DIR is empty: configure with "
                         "-DPEINIT_DEBIAN_KERNEL_DIR=$(kernel/debian-kernel | tail -1)";
        return {};
    }
    std::ifstream kver_file(fs::path(dir) / "kver");
    std::string kver;
    std::getline(kver_file, kver);
    if (kver.empty()) {
        ADD_FAILURE() << dir << "/kver is missing: rerun kernel/debian-kernel";
        return {};
    }
    return {dir, kver};
}

struct ModprobeView {
    std::map<std::string, std::string> loads;  // module name -> .ko path
    std::set<std::string> builtins;
    std::string raw;
};

std::string ModuleNameFromPath(const std::string& path) {
    std::string base = fs::path(path).filename().string();
    base = base.substr(0, base.find(".ko"));
    return NormalizeModuleName(base);
}

ModprobeView RunModprobe(const Tree& tree, const std::string& module) {
    std::vector<std::string> argv = {testing::SbinTool("modprobe")};
    for (const auto& dir : Kmod::ConfigDirs(tree.root)) {
        argv.push_back("-C");
        argv.push_back(dir.string());
    }
    argv.insert(argv.end(), {"-d", tree.root.string(), "-S", tree.kver, "--show-depends", module});
    auto r = testing::RunCommand(argv);
    EXPECT_EQ(r.status, 0) << "modprobe --show-depends " << module << ":\n" << r.out << r.err;
    ModprobeView view;
    view.raw = r.out;
    std::istringstream lines(r.out);
    std::string line;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::string verb, what;
        words >> verb >> what;
        if (verb == "insmod") {
            view.loads[ModuleNameFromPath(what)] = what;
        } else if (verb == "builtin") {
            view.builtins.insert(NormalizeModuleName(what));
        } else if (!verb.empty()) {
            ADD_FAILURE() << "unexpected modprobe line: " << line;
        }
    }
    return view;
}

void ExpectValidOrder(const Plan& plan) {
    std::set<std::string> live;
    for (std::size_t i = 0; i < plan.entries.size(); ++i) {
        const PlanEntry& e = plan.entries[i];
        if (!e.Loadable()) continue;
        for (const auto& dep : e.hard_deps) {
            EXPECT_TRUE(live.count(dep))
                << e.name << " is ordered before its hard dependency " << dep;
        }
        for (const auto& dep : e.soft_pre) {
            const PlanEntry* d = plan.Find(dep);
            if (d && d->Loadable()) {
                EXPECT_TRUE(live.count(dep)) << e.name << " before " << dep;
            }
        }
        for (std::size_t w : e.waits_for) EXPECT_LT(w, i) << e.name;
        live.insert(e.name);
    }
    for (const auto& e : plan.entries) {
        if (!e.Loadable()) continue;
        for (const auto& post : e.soft_post) {
            const PlanEntry* p = plan.Find(post);
            if (p && p->Loadable()) {
                EXPECT_GT(plan.IndexOf(post), plan.IndexOf(e.name)) << post << " after " << e.name;
            }
        }
    }
}

class PlanDebianTest : public ::testing::TestWithParam<std::string> {
  protected:
    void SetUp() override {
        tree_ = DebianTree();
        ASSERT_FALSE(tree_.root.empty());
        auto db = KmodDb::Open(tree_.root, tree_.kver);
        ASSERT_TRUE(db) << db.error().message();
        db_ = std::move(*db);
    }

    Tree tree_;
    std::unique_ptr<KmodDb> db_;
};

TEST_P(PlanDebianTest, ClosureEqualsModprobeAndOrderIsValid) {
    const std::string& module = GetParam();
    PlanInput input;
    input.requests.push_back({module, RequestOrigin::Other("test"), "", false});
    auto plan = BuildPlan(*db_, input);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_TRUE(plan->ok()) << ::testing::PrintToString(plan->errors);

    ModprobeView want = RunModprobe(tree_, module);
    ASSERT_FALSE(want.loads.empty()) << module << " is not in the tree:\n" << want.raw;

    std::map<std::string, std::string> loads;
    std::set<std::string> builtins;
    for (const auto& e : plan->entries) {
        if (e.status == ModuleStatus::kLoad) loads[e.name] = e.path;
        if (e.status == ModuleStatus::kBuiltin) builtins.insert(e.name);
    }
    EXPECT_EQ(loads, want.loads) << "modprobe --show-depends " << module << ":\n" << want.raw;
    EXPECT_EQ(builtins, want.builtins);
    ExpectValidOrder(*plan);
    EXPECT_EQ(plan->entries.back().name.empty(), false);
    std::cout << "[ modprobe ] " << module << ": " << loads.size() << " to load, "
              << builtins.size() << " built in: identical\n";
}

INSTANTIATE_TEST_SUITE_P(RealModules, PlanDebianTest, ::testing::ValuesIn(kModules),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                             return info.param;
                         });

// Everything at once, as a boot would request it: one plan, each module once, valid order,
// closure equal to the union of modprobe's.
TEST(PlanDebianAll, OnePlanForEveryModule) {
    ASSERT_GE(kModules.size(), 20u);
    Tree tree = DebianTree();
    ASSERT_FALSE(tree.root.empty());
    auto db = KmodDb::Open(tree.root, tree.kver);
    ASSERT_TRUE(db) << db.error().message();
    PlanInput input;
    for (const auto& m : kModules) input.requests.push_back({m, RequestOrigin::Unit("all.toml"), "", false});
    auto plan = BuildPlan(**db, input);
    ASSERT_TRUE(plan) << plan.error().message();
    EXPECT_TRUE(plan->ok()) << ::testing::PrintToString(plan->errors);
    ExpectValidOrder(*plan);

    std::set<std::string> union_of_modprobe;
    for (const auto& m : kModules) {
        ModprobeView v = RunModprobe(tree, m);
        for (const auto& [name, path] : v.loads) union_of_modprobe.insert(name);
        for (const auto& name : v.builtins) union_of_modprobe.insert(name);
    }
    std::set<std::string> planned;
    for (const auto& e : plan->entries) {
        EXPECT_TRUE(e.Loadable()) << e.name << ": " << e.reason;
        EXPECT_TRUE(planned.insert(e.name).second) << e.name << " planned twice";
    }
    EXPECT_EQ(planned, union_of_modprobe);
    std::cout << "[ modprobe ] " << kModules.size() << " requests: " << planned.size()
              << " distinct modules\n";
}

}  // namespace
}  // namespace peinit
