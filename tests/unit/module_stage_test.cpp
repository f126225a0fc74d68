// The module stage (stages/modules/): the real planner on the synthetic module tree
// tests/fixtures/roots/basic (copied into a fresh root per test, with signed packages and a trust
// directory made at test time), loads through FakeKernel with scripted latencies and errnos.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <map>
#include <mutex>
#include <thread>
#include <sstream>
#include <stdexcept>

#include "peinit/core/plan.h"
#include "peinit/modload/loader.h"
#include "peinit/modload/session.h"
#include "tests/fakes/fake_kernel.h"
#include "peinit/sys/module_decompress.h"
#include "peinit/sys/kmod.h"
#include "peinit/sys/package.h"
#include "peinit/sys/package_crypto.h"
#include "peinit/tpm/measure.h"
#include "peinit/core/boot_plan.h"
#include "peinit/core/stored_plan.h"
#include "stages/config/config.h"
#include "stages/modules/modules.h"
#include "stages/stage.h"
#include "tests/fakes/fake_tpm.h"
#include "tests/unit/captured_log.h"
#include "tests/unit/fake_module_elf.h"
#include "tests/json_at.h"
#include "tests/unit/fixture_roots.h"

namespace peinit {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;
using ::testing::UnorderedElementsAre;
using Status = ModuleOutcome::Status;

// Every module of the basic fixture tree that has a .ko.
const std::vector<std::string> kAllModules = {
    "crc32c_intel", "crc32c_generic", "bl_cmd",        "bl_cmd_user", "bl_conf",      "bl_conf_top",
    "bl_conf_user", "bl_false",       "bl_false_user", "bl_hive",     "bl_hive_user", "cyc_a",
    "cyc_b",        "cyc_user",       "dia_base",      "dia_left",    "dia_right",    "dia_top",
    "gone_user",    "odd_install",    "opt_mod",       "soft_conf",   "soft_main",    "soft_post",
    "soft_pre",     "ext4",           "jbd2",          "mbcache",     "crc16"};

// Modules of the tree without any dependency.
const std::vector<std::string> kIndependent = {"crc32c_generic", "crc32c_intel", "dia_base",
                                               "odd_install",    "opt_mod",      "jbd2",
                                               "mbcache",        "crc16"};

class ModuleStageTest : public ::testing::Test {
  protected:
    void SetUp() override {
        fs::path fixture = testing::FixtureRoot("basic");
        ASSERT_FALSE(fixture.empty());
        char tmpl[] = "/tmp/peinit-module-stage-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        tmp_ = tmpl;
        root_ = tmp_ / "root";
        fs::copy(fixture, root_, fs::copy_options::recursive);
        fs::create_directories(root_ / "run/peinit");
        fs::create_directories(root_ / "etc/peinit/keys");
        fs::create_directories(root_ / "usr/lib/peinit/packages");
        auto key = SigningKey::Generate();
        ASSERT_TRUE(key) << key.error().message();
        key_.emplace(std::move(*key));
        auto pem = key_->PublicPem();
        ASSERT_TRUE(pem);
        std::ofstream(root_ / "etc/peinit/keys/test.pub") << *pem;

        ctx_.paths.root = root_;
        ctx_.kernel_release = testing::kFixtureKver;
        ctx_.policy.workers.value = 4;
    }

    void TearDown() override {
        std::error_code ec;
        if (!tmp_.empty()) fs::remove_all(tmp_, ec);
    }

    // A package file in the image's packages directory with `modules` (fake payload bytes: the
    // fake kernel does not look at them), signed by `key` (the trusted key by default).
    void WritePackage(const std::string& file, const std::vector<std::string>& modules,
                      const SigningKey* key = nullptr, std::string kver = "", bool tamper = false,
                      const std::map<std::string, std::vector<std::byte>>& images = {}) {
        PackageSpec spec;
        spec.name = fs::path(file).stem().string();
        spec.version = "1";
        spec.kernel_release = kver.empty() ? testing::kFixtureKver : kver;
        for (const auto& m : modules) {
            std::string text = "fake module " + m + " payload";
            std::vector<std::byte> bytes(text.size());
            std::memcpy(bytes.data(), text.data(), text.size());
            if (auto it = images.find(m); it != images.end()) bytes = it->second;
            spec.files.push_back({"modules/" + m + ".ko", std::move(bytes)});
        }
        auto pkg = CreatePackage(spec, key != nullptr ? key : &*key_);
        ASSERT_TRUE(pkg) << pkg.error().message();
        if (tamper) {
            std::string_view all(reinterpret_cast<const char*>(pkg->data()), pkg->size());
            auto at = all.find("fake module " + modules.front());
            ASSERT_NE(at, std::string_view::npos);
            (*pkg)[at] = std::byte{'F'};  // same size, different SHA-256
        }
        std::ofstream out(root_ / "usr/lib/peinit/packages" / file, std::ios::binary);
        out.write(reinterpret_cast<const char*>(pkg->data()),
                  static_cast<std::streamsize>(pkg->size()));
    }
    void WriteAllPackage() { WritePackage("all.pkg", kAllModules); }

    // Units from (name, TOML text) pairs, linked as the config stage links them.
    void SetUnits(const std::vector<std::pair<std::string, std::string>>& sources) {
        ConfigErrors errors;
        std::vector<Unit> parsed;
        for (const auto& [name, text] : sources) {
            auto unit = ParseUnitFile("units/" + name + ".toml", text, errors);
            ASSERT_TRUE(unit) << ::testing::PrintToString(errors.size());
            parsed.push_back(std::move(*unit));
        }
        ctx_.units = LinkUnits(std::move(parsed), errors);
        ASSERT_TRUE(errors.empty());
    }
    static std::string ModulesToml(const std::vector<std::string>& modules,
                                   const std::string& header = "") {
        std::string text = header;
        for (const auto& m : modules) text += "\n[[module]]\nname = \"" + m + "\"\n";
        return text;
    }

    void Run() {
        auto r = RunModules(ctx_);
        ASSERT_TRUE(r) << r.error().message();
    }

    const ModuleOutcome& Outcome(const std::string& name) {
        static const ModuleOutcome kNone{};
        for (const auto& o : ctx_.module_outcomes) {
            if (o.module == name) return o;
        }
        ADD_FAILURE() << name << " has no outcome";
        return kNone;
    }

    std::vector<KernelCall> Loads() const { return kernel_.Calls(KernelOp::kInitModule); }
    std::vector<std::string> LoadNames() const {
        std::vector<std::string> names;
        for (const auto& c : Loads()) names.push_back(c.name);
        return names;
    }
    const KernelCall* LoadOf(const std::string& name) const {
        for (const auto& c : calls_cache_) {
            if (c.name == name) return &c;
        }
        return nullptr;
    }
    void CacheLoads() { calls_cache_ = Loads(); }

    std::string Record() const {
        return testing::ReadFileOrEmpty(root_ / "run/peinit/modules.json");
    }
    // The record without whitespace, so checks do not depend on the formatter's spacing.
    std::string CompactRecord() const {
        std::string r = Record();
        r.erase(std::remove_if(r.begin(), r.end(), [](char c) { return std::isspace(c); }),
                r.end());
        return r;
    }

    // The plan the stage builds, for order comparisons.
    Plan PlanFor(const PlanInput& input) {
        auto db = KmodDb::Open(root_, testing::kFixtureKver);
        EXPECT_TRUE(db);
        auto plan = BuildPlan(**db, input);
        EXPECT_TRUE(plan);
        return *plan;
    }

    fs::path tmp_;
    fs::path root_;
    std::optional<SigningKey> key_;
    FakeKernel kernel_;
    BootContext ctx_{kernel_};
    testing::CapturedLog log_{"module-stage-test", spdlog::level::debug};
    std::vector<KernelCall> calls_cache_;
};

// Measured boot: each module handed to the kernel is measured first, with the SHA-256 of
// exactly the bytes init_module got, its package and the package's signer, in parallel loads too.
TEST_F(ModuleStageTest, EveryModuleIsMeasuredWithTheBytesTheKernelGot) {
    WriteAllPackage();
    kernel_.SetModuleError("jbd2", EKEYREJECTED);  // handed to the kernel, so measured all the same
    SetUnits({{"storage", ModulesToml({"ext4", "crc16", "dia_top"})}});
    auto tpm = std::make_shared<FakeTpm>();
    tpm::MeasureConfig config;
    config.log_path = (root_ / "run/log/systemd/tpm2-measure.log").string();
    ctx_.measurement = std::make_shared<tpm::Measurement>(tpm, config);
    Run();
    CacheLoads();
    const MeasurementRecord record = ctx_.measurement->Record();
    ASSERT_EQ(record.events.size(), calls_cache_.size()) << "one event per init_module call";
    ASSERT_FALSE(calls_cache_.empty());
    for (const auto& call : calls_cache_) {
        const std::string s = tpm::EventString(tpm::MakeModuleEvent(
            call.name, tpm::Hex(tpm::Sha256(std::span<const std::byte>(
                           kernel_.InitModuleImage(call.name)))),
            "all.pkg", key_->public_key().fingerprint));
        EXPECT_TRUE(std::any_of(record.events.begin(), record.events.end(),
                                [&](const auto& e) { return e.string == s; }))
            << call.name << " not measured as " << s;
    }
    EXPECT_EQ(tpm->extends().size(), calls_cache_.size());
    EXPECT_TRUE(Outcome("jbd2").status == ModuleOutcome::Status::kFailed);
}

TEST_F(ModuleStageTest, EveryDependencyIsLiveBeforeItsDependentStarts) {
    WriteAllPackage();
    SetUnits({{"storage", ModulesToml({"ext4"})}, {"diamond", ModulesToml({"dia_top"})}});
    for (const char* m : {"jbd2", "mbcache", "crc16", "crc32c_generic", "dia_base", "dia_left"}) {
        kernel_.SetModuleLatency(m, 40ms);
    }
    Run();
    CacheLoads();
    EXPECT_THAT(LoadNames(),
                UnorderedElementsAre("crc32c_generic", "crc32c_intel", "jbd2", "mbcache", "crc16",
                                     "ext4", "dia_base", "dia_left", "dia_right", "dia_top"));
    const std::map<std::string, std::vector<std::string>> deps = {
        {"ext4", {"jbd2", "mbcache", "crc16", "crc32c_generic", "crc32c_intel"}},
        {"dia_left", {"dia_base"}},
        {"dia_right", {"dia_base"}},
        {"dia_top", {"dia_base", "dia_left", "dia_right"}}};
    for (const auto& [module, wanted] : deps) {
        const KernelCall* m = LoadOf(module);
        ASSERT_NE(m, nullptr) << module;
        for (const auto& dep : wanted) {
            const KernelCall* d = LoadOf(dep);
            ASSERT_NE(d, nullptr) << dep;
            EXPECT_LE(d->end, m->start) << dep << " still loading when " << module << " started";
        }
    }
    // Independent chains overlapped.
    EXPECT_GE(kernel_.MaxConcurrentLoads(), 2);
    for (const auto& o : ctx_.module_outcomes) {
        EXPECT_EQ(o.status, Status::kLoaded) << o.module;
        EXPECT_EQ(o.package, "all.pkg") << o.module;
    }
    EXPECT_EQ(Outcome("ext4").unit, "storage");
    EXPECT_THAT(Outcome("ext4").requested_by, ElementsAre("unit storage"));
    EXPECT_THAT(Outcome("jbd2").requested_by, ElementsAre("unit storage -> ext4"));
    EXPECT_EQ(Outcome("jbd2").unit, "");
    EXPECT_GE(Outcome("jbd2").duration, 40ms);
    EXPECT_THAT(log_.str(), HasSubstr("modules done ok=10 failed=0 skipped=0 blacklisted=0 no_device=0 ms="));
    EXPECT_THAT(log_.str(), HasSubstr(" workers=4"));
}

// The real root may be mounted (the root stage's gate, stages/root/root.h) as soon as the boot's
// loads are over: before the stage logs and records their outcomes, and once, whatever follows.
TEST_F(ModuleStageTest, TheRootGateOpensWhenTheLoadsAreOverBeforeTheRecord) {
    WriteAllPackage();
    SetUnits({{"storage", ModulesToml({"ext4", "soft_main"})}});
    struct Seen {
        int opened = 0;
        std::size_t loads = 0;
        bool record_written = false;
    };
    auto seen = std::make_shared<Seen>();
    ctx_.background.Start<Seen>(std::string(kRootPreparation), seen, nullptr,
                                [this](Seen& s) {
                                    if (s.opened++ > 0) return;  // what the first opening saw
                                    s.loads = kernel_.Calls(KernelOp::kInitModule).size();
                                    s.record_written = fs::exists(root_ / "run/peinit/modules.json");
                                });
    Run();
    const std::size_t loads = kernel_.Calls(KernelOp::kInitModule).size();
    ASSERT_GT(loads, 2u);
    EXPECT_GE(seen->opened, 1);
    EXPECT_EQ(seen->loads, loads);  // every load was over
    EXPECT_FALSE(seen->record_written);
    EXPECT_THAT(log_.str(), HasSubstr("modules done ok="));
}

TEST_F(ModuleStageTest, SoftPreLoadsBeforeAndSoftPostAfter) {
    WriteAllPackage();
    SetUnits({{"soft", ModulesToml({"soft_main"})}});
    kernel_.SetModuleLatency("soft_pre", 30ms);
    kernel_.SetModuleLatency("soft_main", 30ms);
    Run();
    CacheLoads();
    ASSERT_NE(LoadOf("soft_pre"), nullptr);
    ASSERT_NE(LoadOf("soft_main"), nullptr);
    ASSERT_NE(LoadOf("soft_post"), nullptr);
    EXPECT_LE(LoadOf("soft_pre")->end, LoadOf("soft_main")->start);
    EXPECT_LE(LoadOf("soft_main")->end, LoadOf("soft_post")->start);
}

TEST_F(ModuleStageTest, FailedSoftDependencyDoesNotStopTheModule) {
    WriteAllPackage();
    SetUnits({{"soft", ModulesToml({"soft_main"})}});
    kernel_.SetModuleError("soft_pre", ENOEXEC);
    Run();
    EXPECT_EQ(Outcome("soft_pre").status, Status::kFailed);
    EXPECT_EQ(Outcome("soft_main").status, Status::kLoaded);
    EXPECT_EQ(Outcome("soft_post").status, Status::kLoaded);
}

TEST_F(ModuleStageTest, NoModuleIsLoadedTwiceWhateverReachesIt) {
    WriteAllPackage();
    SetUnits({{"a", ModulesToml({"dia_top", "ext4"})}, {"b", ModulesToml({"dia-left", "jbd2"})}});
    ctx_.cmdline.modules_load = {"dia_top", "fs-ext4", "crc16"};
    kernel_.SetModuleLatency("dia_base", 50ms);
    Run();
    std::vector<std::string> names = LoadNames();
    std::sort(names.begin(), names.end());
    EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end())
        << ::testing::PrintToString(names);
    EXPECT_EQ(names.size(), 10u);
    EXPECT_THAT(Outcome("dia_top").requested_by, ElementsAre("unit a", "modules_load="));
    EXPECT_THAT(Outcome("dia_base").requested_by,
                UnorderedElementsAre("unit a -> dia_top", "unit b -> dia_left",
                                     "unit a -> dia_top -> dia_right"));
    EXPECT_THAT(Outcome("ext4").requested_by,
                ElementsAre("unit a", "modules_load= -> alias fs-ext4"));
    EXPECT_EQ(ctx_.module_outcomes.size(), 10u);
}

TEST_F(ModuleStageTest, FailureSkipsEveryDependentWithTheNamedReasonAndNothingElse) {
    WriteAllPackage();
    SetUnits(
        {{"storage", ModulesToml({"ext4"})}, {"diamond", ModulesToml({"dia_top", "soft_main"})}});
    kernel_.SetModuleError("jbd2", EKEYREJECTED);
    kernel_.SetModuleError("dia_base", ENOEXEC);
    Run();
    EXPECT_EQ(Outcome("jbd2").status, Status::kFailed);
    EXPECT_EQ(Outcome("jbd2").error, EKEYREJECTED);
    EXPECT_EQ(Outcome("ext4").status, Status::kSkipped);
    EXPECT_EQ(Outcome("ext4").reason, "dependency jbd2 failed (EKEYREJECTED)");
    // Transitively: dia_top waits for dia_left/right, which wait for dia_base.
    for (const char* m : {"dia_left", "dia_right", "dia_top"}) {
        EXPECT_EQ(Outcome(m).status, Status::kSkipped) << m;
        EXPECT_EQ(Outcome(m).reason, "dependency dia_base failed (ENOEXEC)") << m;
    }
    // Nothing was tried for the skipped modules; everything else loaded.
    EXPECT_THAT(LoadNames(),
                AllOf(::testing::Not(Contains("ext4")), ::testing::Not(Contains("dia_top"))));
    for (const char* m : {"mbcache", "crc16", "crc32c_generic", "crc32c_intel", "soft_pre",
                          "soft_main", "soft_post"}) {
        EXPECT_EQ(Outcome(m).status, Status::kLoaded) << m;
    }
    std::string log = log_.str();
    EXPECT_THAT(log, HasSubstr("module jbd2 failed: "));
    EXPECT_THAT(log, HasSubstr("(EKEYREJECTED), wanted by unit storage -> ext4"));
    EXPECT_THAT(log, HasSubstr("module ext4 skipped: dependency jbd2 failed (EKEYREJECTED)"));
    EXPECT_THAT(log, HasSubstr("modules done ok=7 failed=2 skipped=4 blacklisted=0"));
}

TEST_F(ModuleStageTest, BlacklistThroughEverySourceDirectAndAsDependency) {
    WriteAllPackage();
    SetUnits({{"bl", ModulesToml({"bl_hive", "bl_hive_user", "bl_cmd", "bl_cmd_user", "bl_conf",
                                  "bl_conf_top", "bl_false", "bl_false_user", "crc16"})}});
    ctx_.policy.blacklist = {{"bl_hive", PolicySource::kHive}, {"bl_cmd", PolicySource::kCmdline}};
    Run();
    EXPECT_THAT(LoadNames(), ElementsAre("crc16"));
    struct Case {
        const char* module;
        const char* source;
    };
    for (const Case& c : {Case{"bl_hive", "hive Machine\\System\\Modules\\Blacklist"},
                          Case{"bl_cmd", "kernel command line modprobe.blacklist=bl_cmd"},
                          Case{"bl_conf", "/etc/modprobe.d/fixture.conf:3 blacklist bl_conf"},
                          Case{"bl_false", "install bl_false /bin/false"}}) {
        EXPECT_EQ(Outcome(c.module).status, Status::kBlacklisted) << c.module;
        EXPECT_THAT(Outcome(c.module).reason, HasSubstr(c.source)) << c.module;
        EXPECT_THAT(log_.str(), HasSubstr(std::string("module ") + c.module + " blacklisted ("));
    }
    for (const char* user : {"bl_hive_user", "bl_cmd_user", "bl_conf_top", "bl_false_user"}) {
        EXPECT_EQ(Outcome(user).status, Status::kSkipped) << user;
    }
    EXPECT_THAT(Outcome("bl_cmd_user").reason,
                HasSubstr("dependency bl_cmd is blacklisted (kernel command line "
                          "modprobe.blacklist=bl_cmd)"));
    EXPECT_THAT(log_.str(), HasSubstr("module bl_hive blacklisted (hive "
                                      "Machine\\System\\Modules\\Blacklist): wanted by unit bl"));
    EXPECT_THAT(log_.str(), HasSubstr("blacklisted=4"));
}

TEST_F(ModuleStageTest, EexistAndBuiltinCountAsSuccess) {
    WriteAllPackage();
    SetUnits({{"a", ModulesToml({"ext4", "soft_conf"})}});
    kernel_.SetLoaded("jbd2");
    Run();
    EXPECT_EQ(Outcome("jbd2").status, Status::kAlreadyLoaded);
    EXPECT_EQ(Outcome("ext4").status, Status::kLoaded);
    EXPECT_EQ(Outcome("builtin_core").status, Status::kBuiltin);
    EXPECT_EQ(Outcome("soft_conf").status, Status::kLoaded);
    EXPECT_THAT(LoadNames(), ::testing::Not(Contains("builtin_core")));
    EXPECT_THAT(log_.str(), HasSubstr("failed=0 skipped=0"));
}

TEST_F(ModuleStageTest, OneWorkerLoadsStrictlyInPlanOrder) {
    WriteAllPackage();
    SetUnits({{"a", ModulesToml({"ext4", "dia_top", "soft_main", "opt_mod"})}});
    ctx_.policy.workers.value = 1;
    for (const auto& m : kIndependent) kernel_.SetModuleLatency(m, 5ms);
    Run();
    PlanInput input;
    for (const char* m : {"ext4", "dia_top", "soft_main", "opt_mod"}) {
        input.requests.push_back({m, RequestOrigin::Unit("a"), "", false});
    }
    std::vector<std::string> plan_order;
    for (const auto& e : PlanFor(input).entries) {
        if (e.status == ModuleStatus::kLoad) plan_order.push_back(e.name);
    }
    EXPECT_THAT(LoadNames(), ElementsAreArray(plan_order));
    auto loads = Loads();
    for (std::size_t i = 1; i < loads.size(); ++i) EXPECT_LE(loads[i - 1].end, loads[i].start);
    EXPECT_EQ(kernel_.MaxConcurrentLoads(), 1);
    // No worker thread for one worker: every load ran on the stage's own thread.
    for (const auto& c : loads) EXPECT_EQ(c.thread, std::this_thread::get_id());
    EXPECT_THAT(CompactRecord(), HasSubstr("\"threads\":0"));
}

TEST_F(ModuleStageTest, ParallelWorkersOverlapLatencies) {
    WriteAllPackage();
    ctx_.cmdline.modules_load = kIndependent;
    for (const auto& m : kIndependent) kernel_.SetModuleLatency(m, 200ms);

    ctx_.policy.workers.value = 1;
    auto t0 = std::chrono::steady_clock::now();
    Run();
    auto sequential = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(kernel_.MaxConcurrentLoads(), 1);

    FakeKernel parallel_kernel;
    for (const auto& m : kIndependent) parallel_kernel.SetModuleLatency(m, 200ms);
    BootContext ctx(parallel_kernel);
    ctx.paths = ctx_.paths;
    ctx.kernel_release = ctx_.kernel_release;
    ctx.cmdline = ctx_.cmdline;
    ctx.policy.workers.value = 4;
    t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(RunModules(ctx));
    auto parallel = std::chrono::steady_clock::now() - t0;

    auto ms = [](auto d) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    };
    std::cout << "[ figures  ] 8 modules x 200 ms: workers=1 " << ms(sequential)
              << " ms, workers=4 " << ms(parallel) << " ms, max concurrent "
              << parallel_kernel.MaxConcurrentLoads() << "\n";
    EXPECT_GE(sequential, 1600ms);
    EXPECT_LT(parallel, 1200ms);  // ideal 400 ms; generous for loaded CI machines
    EXPECT_EQ(parallel_kernel.MaxConcurrentLoads(), 4);
    EXPECT_EQ(parallel_kernel.LoadedModules().size(), 8u);
    EXPECT_THAT(CompactRecord(), HasSubstr("\"threads\":4"));
}

// By default the pool grows while module inits sleep (the CPUs are idle), up to every ready
// load in flight; explicit workers (ParallelWorkersOverlapLatencies) stay exact.
TEST_F(ModuleStageTest, DefaultWorkersGrowWhileInitsSleep) {
    WriteAllPackage();
    ctx_.cmdline.modules_load = kIndependent;
    for (const auto& m : kIndependent) kernel_.SetModuleLatency(m, 300ms);
    ctx_.policy.workers.value.reset();
    auto t0 = std::chrono::steady_clock::now();
    Run();
    auto elapsed = std::chrono::steady_clock::now() - t0;
    std::cout << "[ figures  ] 8 sleeping inits x 300 ms, default workers ("
              << DefaultModuleWorkers() << "): "
              << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
              << " ms, max concurrent " << kernel_.MaxConcurrentLoads() << "\n";
    EXPECT_GT(kernel_.MaxConcurrentLoads(), std::min(DefaultModuleWorkers(), 7));
    EXPECT_EQ(kernel_.LoadedModules().size(), 8u);
    // With only the default workers it could not take less than 8 / workers x 300 ms.
    EXPECT_LT(elapsed, 300ms * 8 / std::min(DefaultModuleWorkers(), 4) - 100ms);
}

// CPU-bound loads never grow the pool, however busy the machine is: a worker that waits for a
// CPU is runnable, not asleep.
// A free worker takes the ready job with the longest chain of work behind it: the costly
// chain (prep -> big) starts at once instead of after the small leaves before it in plan order,
// and the whole set ends sooner than in plan order.
TEST(Loader, LongestChainStartsFirst) {
    std::vector<LoadJob> jobs(5);
    const char* names[] = {"leaf1", "leaf2", "leaf3", "prep", "big"};
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        jobs[i].name = names[i];
        jobs[i].cost = 1000;
    }
    jobs[4].cost = 30000;
    jobs[4].hard = {3};
    auto run = [&](std::vector<LoadJob> js) {
        std::mutex mu;
        std::vector<std::string> order;
        auto load = [&](std::size_t i) {
            {
                std::lock_guard lock(mu);
                order.push_back(js[i].name);
            }
            // Every run sleeps as the sized one, so a zero-cost leaf cannot finish before the
            // other worker has even logged its first job.
            std::this_thread::sleep_for(std::chrono::milliseconds(i == 4 ? 300 : 20));
            LoadAttempt a;
            a.ok = true;
            return a;
        };
        auto t0 = std::chrono::steady_clock::now();
        LoaderReport report = RunLoader(js, {}, 2, load, t0, 2);
        for (const auto& r : report.results) EXPECT_EQ(r.state, JobResult::State::kLive);
        return std::make_pair(order, std::chrono::steady_clock::now() - t0);
    };
    // The two workers start their first jobs at once, so which of those two logs first is a
    // race; in plan order they would be leaf1 and leaf2, with prep only third.
    auto first_two = [](const std::vector<std::string>& o) {
        return std::vector<std::string>(o.begin(), o.begin() + 2);
    };
    auto [order, elapsed] = run(jobs);
    ASSERT_EQ(order.size(), 5u);
    EXPECT_THAT(first_two(order), Contains("prep"));  // its chain (prep + big) is the longest
    // Costs without sizes count 1 each: a job with dependents still goes before a lone leaf.
    for (auto& j : jobs) j.cost = 0;
    auto [unsized, unused] = run(jobs);
    ASSERT_EQ(unsized.size(), 5u);
    EXPECT_THAT(first_two(unsized), Contains("prep"));
    // prep then big on one worker while the leaves share the other: about 320 ms.
    std::cout << "[ figures  ] longest chain first: "
              << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
              << " ms (ideal 320)\n";
}

// A load that throws fails its job with the reason and skips its dependents; the other loads
// go on and no exception leaves a worker thread (it would terminate PID 1).
TEST(Loader, ThrowingLoadFailsItsJobOnly) {
    std::vector<LoadJob> jobs(4);
    const char* names[] = {"ok1", "boom", "after_boom", "ok2"};
    for (std::size_t i = 0; i < jobs.size(); ++i) jobs[i].name = names[i];
    jobs[2].hard = {1};
    auto load = [](std::size_t i) -> LoadAttempt {
        if (i == 1) throw std::runtime_error("injected");
        LoadAttempt a;
        a.ok = true;
        return a;
    };
    for (int workers : {1, 2}) {
        LoaderReport report = RunLoader(jobs, {}, workers, load, std::chrono::steady_clock::now(),
                                        workers);
        EXPECT_EQ(report.results[0].state, JobResult::State::kLive);
        EXPECT_EQ(report.results[1].state, JobResult::State::kFailed);
        EXPECT_EQ(report.results[1].attempt.message, "unexpected exception: injected");
        EXPECT_EQ(report.results[2].state, JobResult::State::kSkipped);
        EXPECT_EQ(report.results[2].skip_reason, "dependency boom failed (unexpected exception)");
        EXPECT_EQ(report.results[3].state, JobResult::State::kLive);
    }
}

TEST(Loader, CpuBoundLoadsKeepTheWorkerCount) {
    std::vector<LoadJob> jobs(8);
    for (std::size_t i = 0; i < jobs.size(); ++i) jobs[i].name = "spin" + std::to_string(i);
    auto spin = [](std::size_t) {
        const auto end = std::chrono::steady_clock::now() + 60ms;
        volatile unsigned long x = 0;
        while (std::chrono::steady_clock::now() < end) x = x + 1;
        LoadAttempt a;
        a.ok = true;
        return a;
    };
    LoaderReport report = RunLoader(jobs, {}, 2, spin, std::chrono::steady_clock::now(), 16);
    EXPECT_EQ(report.threads, 2);
    for (const auto& r : report.results) EXPECT_EQ(r.state, JobResult::State::kLive);
}

// A load that waits for its input (its bytes being hashed by another thread, marked with
// LoaderInputWait) is not a module init that sleeps: the pool stays at its workers for it, while
// the same wait unmarked makes it grow.
TEST(Loader, LoadsWaitingForTheirInputKeepTheWorkerCount) {
    std::vector<LoadJob> jobs(8);
    for (std::size_t i = 0; i < jobs.size(); ++i) jobs[i].name = "wait" + std::to_string(i);
    auto ok = [] {
        LoadAttempt a;
        a.ok = true;
        return a;
    };
    auto input = [&](std::size_t) {
        LoaderInputWait waiting;
        std::this_thread::sleep_for(100ms);
        return ok();
    };
    LoaderReport waited = RunLoader(jobs, {}, 2, input, std::chrono::steady_clock::now(), 16);
    EXPECT_EQ(waited.threads, 2);
    for (const auto& r : waited.results) EXPECT_EQ(r.state, JobResult::State::kLive);

    auto init_sleeps = [&](std::size_t) {
        std::this_thread::sleep_for(100ms);
        return ok();
    };
    LoaderReport slept = RunLoader(jobs, {}, 2, init_sleeps, std::chrono::steady_clock::now(), 16);
    EXPECT_GT(slept.threads, 2);
}

TEST_F(ModuleStageTest, SequentialUnitIsABarrier) {
    WriteAllPackage();
    SetUnits({{"par", ModulesToml({"crc16", "mbcache", "dia_top"})},
              {"serial", ModulesToml({"opt_mod", "odd_install", "ext4"}, "sequential = true")},
              {"zlate", ModulesToml({"soft_main"})}});
    for (const char* m :
         {"crc16", "mbcache", "dia_base", "dia_left", "dia_right", "odd_install", "opt_mod", "jbd2",
          "ext4", "soft_main", "soft_pre", "crc32c_generic", "crc32c_intel"}) {
        kernel_.SetModuleLatency(m, 30ms);
    }
    Run();
    auto loads = Loads();
    // The serial unit's own modules (mbcache and crc16 belong to "par", which wants them too).
    const std::vector<std::string> serial = {"opt_mod",        "odd_install",  "jbd2",
                                             "crc32c_generic", "crc32c_intel", "ext4"};
    std::vector<std::string> serial_order;
    for (const auto& c : loads) {
        bool in_serial = std::find(serial.begin(), serial.end(), c.name) != serial.end();
        if (!in_serial) continue;
        serial_order.push_back(c.name);
        for (const auto& other : loads) {
            if (&other == &c) continue;
            bool overlap = other.start < c.end && c.start < other.end;
            EXPECT_FALSE(overlap) << other.name << " overlapped sequential " << c.name;
        }
    }
    // Listed order, each listed module right after its own dependencies.
    ASSERT_EQ(serial_order.size(), serial.size()) << ::testing::PrintToString(serial_order);
    EXPECT_EQ(serial_order[0], "opt_mod");
    EXPECT_EQ(serial_order[1], "odd_install");
    EXPECT_THAT(std::vector<std::string>(serial_order.begin() + 2, serial_order.end() - 1),
                UnorderedElementsAre("jbd2", "crc32c_generic", "crc32c_intel"));
    EXPECT_EQ(serial_order.back(), "ext4");
    EXPECT_EQ(Outcome("ext4").status, Status::kLoaded);
    // Other units still ran in parallel.
    EXPECT_GE(kernel_.MaxConcurrentLoads(), 2);
}

TEST_F(ModuleStageTest, UnitAfterStartsOnlyOnceTheEarlierUnitWasAttempted) {
    WriteAllPackage();
    SetUnits({{"early", ModulesToml({"mbcache", "dia_base"})},
              {"late", ModulesToml({"crc16", "opt_mod"}, "after = [\"early\"]")},
              {"free", ModulesToml({"odd_install"})}});
    kernel_.SetModuleLatency("mbcache", 100ms);
    kernel_.SetModuleError("dia_base", ENOEXEC);
    kernel_.SetModuleLatency("dia_base", 60ms);
    Run();
    CacheLoads();
    for (const char* late : {"crc16", "opt_mod"}) {
        ASSERT_NE(LoadOf(late), nullptr) << late;
        EXPECT_GE(LoadOf(late)->start, LoadOf("mbcache")->end) << late;
        EXPECT_GE(LoadOf(late)->start, LoadOf("dia_base")->end) << late;
    }
    // A unit without `after` does not wait.
    EXPECT_LT(LoadOf("odd_install")->start, LoadOf("mbcache")->end);
    EXPECT_EQ(Outcome("crc16").status, Status::kLoaded);
}

TEST_F(ModuleStageTest, TamperedPackageLoadsNothingAndItsModulesSayWhy) {
    WritePackage("good.pkg", {"crc16", "mbcache", "crc32c_generic", "crc32c_intel", "ext4"});
    WritePackage("storage.pkg", {"jbd2", "opt_mod"}, nullptr, "", /*tamper=*/true);
    SetUnits({{"a", ModulesToml({"ext4", "opt_mod", "crc16"})}});
    Run();
    EXPECT_THAT(LoadNames(), ::testing::Not(Contains("jbd2")));
    EXPECT_THAT(LoadNames(), ::testing::Not(Contains("opt_mod")));
    EXPECT_EQ(Outcome("jbd2").status, Status::kFailed);
    EXPECT_THAT(Outcome("jbd2").reason, StartsWith("package rejected (storage.pkg: hash-mismatch"));
    EXPECT_EQ(Outcome("opt_mod").status, Status::kFailed);
    EXPECT_EQ(Outcome("ext4").status, Status::kSkipped);
    EXPECT_EQ(Outcome("ext4").reason, "dependency jbd2 failed (package rejected)");
    EXPECT_EQ(Outcome("crc16").status, Status::kLoaded);
    EXPECT_EQ(Outcome("crc16").package, "good.pkg");
    EXPECT_THAT(log_.str(), HasSubstr("package storage.pkg rejected: hash-mismatch: "));
    EXPECT_THAT(CompactRecord(), HasSubstr("\"file\":\"storage.pkg\""));
}

// Streaming (issue 26, PACKAGE.md): the first module loads once its own member is checked, and
// the member tampered late in the plan's order is found while that load runs. From then on
// nothing more loads from the package; the report names the member and the module already
// loaded from it, and the kernel got only that module's verified bytes.
TEST_F(ModuleStageTest, MemberTamperedLateStopsFurtherLoadsAndNamesWhatLoaded) {
    // The order is dia_base, dia_left, dia_right, dia_top (each waits for the one before on
    // one worker). dia_left is large, so the first load's bytes are handed out long before the
    // stream reaches dia_top; dia_base's load lasts long enough for the stream to get there.
    std::vector<std::byte> big(4 << 20, std::byte{'l'});
    WritePackage("all.pkg", {"dia_top", "dia_base", "dia_left", "dia_right"}, nullptr, "",
                 /*tamper=*/true, {{"dia_left", big}});
    SetUnits({{"a", ModulesToml({"dia_top"})}});
    ctx_.policy.workers.value = 1;
    kernel_.SetModuleLatency("dia_base", 300ms);
    Run();

    EXPECT_THAT(LoadNames(), ElementsAre("dia_base"));
    const std::string text = "fake module dia_base payload";
    std::vector<std::byte> verified(text.size());
    std::memcpy(verified.data(), text.data(), text.size());
    EXPECT_EQ(kernel_.InitModuleImage("dia_base"), verified);
    for (const char* m : {"dia_left", "dia_right"}) {
        EXPECT_EQ(Outcome(m).status, Status::kFailed) << m;
        EXPECT_THAT(Outcome(m).reason,
                    StartsWith("package rejected (all.pkg: hash-mismatch: modules/dia_top.ko"))
            << m;
    }
    EXPECT_EQ(Outcome("dia_top").status, Status::kSkipped);
    EXPECT_THAT(log_.str(),
                HasSubstr("package all.pkg rejected: hash-mismatch: modules/dia_top.ko"));
    EXPECT_THAT(log_.str(), HasSubstr("; already loaded or loading from it: dia_base; nothing "
                                      "more loads from it"));
    EXPECT_THAT(CompactRecord(), HasSubstr("\"released\":[\"dia_base\"]"));
}

// Whatever the timing of parallel loads against the stream, the kernel gets only bytes that
// match the signed manifest, the tampered member never, and exactly the modules the report
// names as loaded before the rejection.
TEST_F(ModuleStageTest, ParallelLoadsGetOnlyVerifiedBytesWhateverTheTiming) {
    std::vector<std::string> modules = kAllModules;
    std::rotate(modules.begin(), std::find(modules.begin(), modules.end(), "ext4"),
                modules.end());  // ext4 first: the one tampered
    WritePackage("all.pkg", modules, nullptr, "", /*tamper=*/true);
    SetUnits({{"a", ModulesToml({"ext4", "dia_top", "crc16", "opt_mod", "odd_install"})}});
    kernel_.SetModuleLatency("dia_base", 20ms);
    Run();

    EXPECT_THAT(LoadNames(), ::testing::Not(Contains("ext4")));
    for (const auto& name : LoadNames()) {
        const std::string text = "fake module " + name + " payload";
        std::vector<std::byte> verified(text.size());
        std::memcpy(verified.data(), text.data(), text.size());
        EXPECT_EQ(kernel_.InitModuleImage(name), verified) << name;
    }
    EXPECT_NE(Outcome("ext4").status, Status::kLoaded);
    auto reports = ctx_.modload->Packages().reports();
    ASSERT_EQ(reports.size(), 1u);
    EXPECT_FALSE(reports[0].verified);
    EXPECT_THAT(reports[0].reason, StartsWith("hash-mismatch: modules/ext4.ko"));
    EXPECT_THAT(reports[0].released, ::testing::UnorderedElementsAreArray(LoadNames()));
}

// A signed member holding another module than its name says never reaches the kernel: the
// load step reads the module's own name from the verified (decompressed) image, and a mismatch
// rejects the package like a hash mismatch, so nothing more loads from it.
TEST_F(ModuleStageTest, MemberHoldingAnotherModuleIsNeverLoaded) {
    WritePackage("good.pkg", {"crc16", "mbcache", "crc32c_generic", "crc32c_intel", "ext4"});
    WritePackage("storage.pkg", {"jbd2", "opt_mod"}, nullptr, "", false,
                 {{"jbd2", testing::FakeModuleElf("evil", "evil")},
                  {"opt_mod", testing::FakeModuleElf("opt_mod", "opt_mod")}});
    SetUnits({{"a", ModulesToml({"ext4", "crc16"})}, {"b", ModulesToml({"opt_mod"}, "after = [\"a\"]")}});
    Run();
    EXPECT_THAT(LoadNames(), ::testing::Not(Contains("jbd2")));
    EXPECT_THAT(LoadNames(), ::testing::Not(Contains("opt_mod")));
    EXPECT_EQ(Outcome("jbd2").status, Status::kFailed);
    EXPECT_EQ(Outcome("jbd2").reason,
              "package rejected (storage.pkg: module-name-mismatch: modules/jbd2.ko holds module "
              "\"evil\", not \"jbd2\")");
    EXPECT_EQ(Outcome("ext4").status, Status::kSkipped);
    EXPECT_EQ(Outcome("ext4").reason, "dependency jbd2 failed (package rejected)");
    EXPECT_EQ(Outcome("opt_mod").status, Status::kFailed);
    EXPECT_THAT(Outcome("opt_mod").reason,
                StartsWith("package rejected (storage.pkg: module-name-mismatch"));
    EXPECT_EQ(Outcome("crc16").status, Status::kLoaded);
    EXPECT_THAT(log_.str(), HasSubstr("package storage.pkg rejected: module-name-mismatch: "));
}

TEST_F(ModuleStageTest, LooseKoIsNeverLoadedAndUntrustedOrForeignPackagesAreRejected) {
    auto other = SigningKey::Generate();
    ASSERT_TRUE(other);
    WritePackage("crc.pkg", {"crc16"});
    WritePackage("evil.pkg", {"mbcache"}, &*other);
    WritePackage("old.pkg", {"opt_mod"}, nullptr, "6.1.0-other");
    SetUnits({{"a", ModulesToml({"crc16", "mbcache", "opt_mod", "dia_base"})}});
    Run();
    EXPECT_THAT(LoadNames(), ElementsAre("crc16"));
    EXPECT_THAT(Outcome("mbcache").reason, StartsWith("package rejected (evil.pkg: untrusted-key"));
    EXPECT_THAT(Outcome("opt_mod").reason,
                StartsWith("package rejected (old.pkg: wrong-kernel-release"));
    // dia_base.ko is in the module tree, but in no package: fail closed.
    EXPECT_EQ(Outcome("dia_base").status, Status::kFailed);
    EXPECT_EQ(Outcome("dia_base").reason, "not in a verified package");
    EXPECT_EQ(Outcome("dia_base").error, 0);
    EXPECT_THAT(log_.str(), HasSubstr("module dia_base failed: not in a verified package"));
}

// An image's module tree is index-only (initramfs/IMAGE.md): every .ko is an empty
// placeholder (libkmod's dependency parser drops a dependency whose path does not exist), the
// bytes come from the packages. Resolution still works; a module no package holds fails closed.
TEST_F(ModuleStageTest, IndexOnlyTreeLoadsFromPackages) {
    for (const auto& e : fs::recursive_directory_iterator(root_ / "lib/modules")) {
        if (e.path().extension() == ".ko") fs::resize_file(e.path(), 0);
    }
    WritePackage("storage.pkg", {"ext4", "jbd2", "mbcache", "crc16"});
    SetUnits({{"a", ModulesToml({"ext4", "dia_base"})}});
    Run();
    EXPECT_THAT(LoadNames(), UnorderedElementsAre("ext4", "jbd2", "mbcache", "crc16"));
    EXPECT_EQ(Outcome("ext4").status, Status::kLoaded);
    EXPECT_EQ(Outcome("ext4").package, "storage.pkg");
    EXPECT_EQ(Outcome("dia_base").status, Status::kFailed);
    EXPECT_EQ(Outcome("dia_base").reason, "not in a verified package");
}

// a package may hold modules compressed as distributions ship them; the verified bytes
// are decompressed in memory and the kernel gets the ELF image. A member that does not
// decompress fails that module (and skips its dependents), with the reason.
// Issue 16: a unit may load a driver "if the hardware is present". Its init finding no device
// (ENODEV) is then no-device, not a failure; without the flag, or for another errno, it fails.
TEST_F(ModuleStageTest, IfHardwarePresentTurnsNoDeviceIntoItsOwnOutcome) {
    WriteAllPackage();
    kernel_.SetModuleError("mbcache", ENODEV);
    kernel_.SetModuleError("crc16", ENODEV);
    kernel_.SetModuleError("jbd2", EIO);
    SetUnits({{"hw", "[[module]]\nname = \"mbcache\"\nif_hardware_present = true\n"
                     "[[module]]\nname = \"jbd2\"\nif_hardware_present = true\n"},
              {"plain", ModulesToml({"crc16"})}});
    Run();
    EXPECT_EQ(Outcome("mbcache").status, Status::kNoDevice);
    EXPECT_THAT(Outcome("mbcache").reason, HasSubstr("no device for it"));
    EXPECT_EQ(Outcome("jbd2").status, Status::kFailed) << "only a missing device is forgiven";
    EXPECT_EQ(Outcome("crc16").status, Status::kFailed) << "its unit did not say so";
    EXPECT_THAT(CompactRecord(), HasSubstr("\"status\":\"no-device\""));
    EXPECT_THAT(CompactRecord(), HasSubstr("\"no_device\":1"));
}

TEST_F(ModuleStageTest, CompressedModulesAreDecompressedFromTheVerifiedBytes) {
    PackageSpec spec{"storage", "1", testing::kFixtureKver, {}};
    std::map<std::string, std::vector<std::byte>> elf;
    const std::vector<std::pair<std::string, ModuleCompression>> members = {
        {"ext4", ModuleCompression::kZstd},
        {"jbd2", ModuleCompression::kXz},
        {"mbcache", ModuleCompression::kGzip},
        {"crc16", ModuleCompression::kNone}};
    for (const auto& [m, c] : members) {
        elf[m] = testing::FakeModuleElf(m, m);
        elf[m].resize(elf[m].size() + 4096, std::byte{'x'});
        std::vector<std::byte> bytes = elf[m];
        std::string suffix = ".ko";
        if (c != ModuleCompression::kNone) {
            auto packed = CompressModule(c, bytes);
            ASSERT_TRUE(packed) << packed.error().message();
            EXPECT_LT(packed->size(), bytes.size());
            bytes = std::move(*packed);
            suffix += c == ModuleCompression::kZstd ? ".zst" : c == ModuleCompression::kXz ? ".xz" : ".gz";
        }
        spec.files.push_back({"modules/fs/" + m + suffix, std::move(bytes)});
    }
    auto pkg = CreatePackage(spec, &*key_);
    ASSERT_TRUE(pkg) << pkg.error().message();
    std::ofstream(root_ / "usr/lib/peinit/packages/storage.pkg", std::ios::binary)
        .write(reinterpret_cast<const char*>(pkg->data()), static_cast<std::streamsize>(pkg->size()));
    SetUnits({{"a", ModulesToml({"ext4"})}});
    Run();
    EXPECT_THAT(LoadNames(), UnorderedElementsAre("ext4", "jbd2", "mbcache", "crc16"));
    for (const auto& [m, c] : members) {
        EXPECT_EQ(kernel_.InitModuleImage(m), elf[m]) << m << " (" << ToString(c) << ")";
    }
}

TEST_F(ModuleStageTest, CorruptCompressedModuleFailsWithTheReason) {
    PackageSpec spec{"storage", "1", testing::kFixtureKver, {}};
    std::vector<std::byte> elf(8192, std::byte{'x'});
    auto packed = CompressModule(ModuleCompression::kZstd, elf);
    ASSERT_TRUE(packed);
    packed->resize(packed->size() / 2);  // signed and hashed as it is: truncated at the source
    spec.files.push_back({"modules/crc16.ko.zst", std::move(*packed)});
    auto pkg = CreatePackage(spec, &*key_);
    ASSERT_TRUE(pkg) << pkg.error().message();
    std::ofstream(root_ / "usr/lib/peinit/packages/storage.pkg", std::ios::binary)
        .write(reinterpret_cast<const char*>(pkg->data()), static_cast<std::streamsize>(pkg->size()));
    SetUnits({{"a", ModulesToml({"crc16"})}});
    Run();
    EXPECT_THAT(LoadNames(), IsEmpty());
    EXPECT_EQ(Outcome("crc16").status, Status::kFailed);
    EXPECT_THAT(Outcome("crc16").reason, HasSubstr("modules/crc16.ko.zst: zstd: truncated"));
}

TEST_F(ModuleStageTest, NoTrustStoreTrustsNothing) {
    WriteAllPackage();
    fs::remove_all(root_ / "etc/peinit/keys");
    SetUnits({{"a", ModulesToml({"crc16"})}});
    Run();
    EXPECT_THAT(LoadNames(), IsEmpty());
    EXPECT_THAT(Outcome("crc16").reason, StartsWith("package rejected (all.pkg: no usable trust"));
}

TEST_F(ModuleStageTest, EnforceSigningPolicyIsSetBeforeAnyLoad) {
    WriteAllPackage();
    SetUnits({{"a", ModulesToml({"crc16"})}});
    ctx_.policy.signing = {SigningPolicy::kEnforce, PolicySource::kHive};
    Run();
    auto calls = kernel_.Calls();
    auto write = std::find_if(calls.begin(), calls.end(),
                              [](const KernelCall& c) { return c.op == KernelOp::kWriteSysfs; });
    auto load = std::find_if(calls.begin(), calls.end(),
                             [](const KernelCall& c) { return c.op == KernelOp::kInitModule; });
    ASSERT_NE(write, calls.end());
    ASSERT_NE(load, calls.end());
    EXPECT_LT(write, load);
    EXPECT_EQ(write->name, FakeKernel::kSigEnforcePath);
    EXPECT_EQ(write->args, "1");
    EXPECT_EQ(Outcome("crc16").status, Status::kLoaded);
    EXPECT_THAT(CompactRecord(), HasSubstr("\"sig_enforce\":\"Y\""));
    EXPECT_THAT(log_.str(), HasSubstr("modules signing policy=enforce(hive) sig_enforce=Y"));
}

TEST_F(ModuleStageTest, WarnLeavesSigEnforceAlone) {
    WriteAllPackage();
    SetUnits({{"a", ModulesToml({"crc16"})}});
    Run();
    EXPECT_THAT(kernel_.Calls(KernelOp::kWriteSysfs), IsEmpty());
    EXPECT_THAT(CompactRecord(), HasSubstr("\"sig_enforce\":\"N\""));
}

TEST_F(ModuleStageTest, EnforceThatCannotBeAppliedLoadsNothing) {
    WriteAllPackage();
    SetUnits({{"a", ModulesToml({"crc16"})}});
    ctx_.policy.signing = {SigningPolicy::kEnforce, PolicySource::kCmdline};
    kernel_.SetOpError(KernelOp::kWriteSysfs, FakeKernel::kSigEnforcePath, EPERM);
    Run();
    EXPECT_THAT(LoadNames(), IsEmpty());
    EXPECT_EQ(Outcome("crc16").status, Status::kFailed);
    EXPECT_THAT(Outcome("crc16").reason, HasSubstr("SigningPolicy=enforce could not be applied"));
    EXPECT_THAT(log_.str(), HasSubstr("SigningPolicy=enforce could not be applied"));
}

TEST_F(ModuleStageTest, OptionsFromModprobeDCommandLineAndUnit) {
    WriteAllPackage();
    SetUnits({{"opt", "[[module]]\nname = \"opt_mod\"\noptions = \"d=4\"\n"}});
    ctx_.cmdline.module_params = {{"opt_mod", "b", "5"}};
    Run();
    auto loads = Loads();
    ASSERT_EQ(loads.size(), 1u);
    EXPECT_EQ(loads[0].args, "a=1 b=2 c=3 b=5 d=4");
}

TEST_F(ModuleStageTest, MissingModulesOptionalOrNot) {
    WriteAllPackage();
    SetUnits({{"a",
               "[[module]]\nname = \"no_such_module\"\noptional = true\n"
               "[[module]]\nname = \"crc16\"\n"}});
    ctx_.cmdline.modules_load = {"ghost_required"};
    Run();
    EXPECT_EQ(Outcome("no_such_module").status, Status::kMissing);
    EXPECT_EQ(Outcome("ghost_required").status, Status::kMissing);
    EXPECT_THAT(log_.str(), HasSubstr("module no_such_module missing (optional)"));
    EXPECT_THAT(log_.str(), HasSubstr("module ghost_required missing: "));
    EXPECT_THAT(log_.str(), HasSubstr("modules done ok=1 failed=1 skipped=1 blacklisted=0"));
}

TEST_F(ModuleStageTest, NothingRequestedNeedsNoModuleTree) {
    fs::remove_all(root_ / "lib/modules");
    ctx_.kernel_release = "6.1.0-none";
    Run();
    EXPECT_THAT(ctx_.module_outcomes, IsEmpty());
    EXPECT_THAT(log_.str(), HasSubstr("modules done ok=0 failed=0 skipped=0 blacklisted=0"));
    EXPECT_THAT(CompactRecord(), HasSubstr("\"modules\":[]"));
}

TEST_F(ModuleStageTest, MissingModuleTreeIsAStageErrorWithEveryRequestRecorded) {
    fs::remove_all(root_ / "lib/modules");
    SetUnits({{"a", ModulesToml({"crc16", "ext4"})}});
    auto r = RunModules(ctx_);
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message(), StartsWith("module tree: "));
    ASSERT_EQ(ctx_.module_outcomes.size(), 2u);
    EXPECT_EQ(ctx_.module_outcomes[0].status, Status::kFailed);
    EXPECT_THAT(CompactRecord(), HasSubstr("\"error\":\"moduletree:"));
}

TEST_F(ModuleStageTest, RecordHoldsEveryModuleWithTimesAndSources) {
    WriteAllPackage();
    SetUnits({{"storage", ModulesToml({"ext4"})}});
    kernel_.SetModuleError("jbd2", EKEYREJECTED);
    kernel_.SetModuleLatency("crc16", 20ms);
    ctx_.policy.workers = {3, PolicySource::kCmdline};
    Run();
    std::string r = CompactRecord();
    EXPECT_THAT(r, HasSubstr("\"version\":1"));
    EXPECT_THAT(r, HasSubstr("\"workers\":3"));
    EXPECT_THAT(r, HasSubstr("\"workers_source\":\"cmdline\""));
    EXPECT_THAT(r, HasSubstr("\"kernel_release\":\"6.1.0-peinit-fixture\""));
    EXPECT_THAT(r, HasSubstr("\"wall_time\":\""));
    EXPECT_THAT(r, HasSubstr("\"boot_offset_ms\":"));
    EXPECT_THAT(r, HasSubstr("\"total_ms\":"));
    EXPECT_THAT(r, HasSubstr("\"errno\":\"EKEYREJECTED\""));
    EXPECT_THAT(r, HasSubstr("\"reason\":\"dependencyjbd2failed(EKEYREJECTED)\""));
    EXPECT_THAT(r, HasSubstr("\"requested_by\":[\"unitstorage->ext4\"]"));
    EXPECT_THAT(r, HasSubstr("\"status\":\"skipped\""));
    EXPECT_THAT(r, HasSubstr("\"package\":\"all.pkg\""));
    EXPECT_THAT(r, HasSubstr("\"verified\":true"));
    EXPECT_THAT(r,
                HasSubstr("\"summary\":{\"blacklisted\":0,\"failed\":1,\"no_device\":0,\"ok\":4,"
                          "\"skipped\":1}"));
    // Times: crc16's duration is at least its scripted latency.
    EXPECT_GE(Outcome("crc16").duration, 20ms);
    EXPECT_GT(Outcome("ext4").start.count(), 0);
    EXPECT_FALSE(fs::exists(root_ / "run/peinit/modules.json.tmp"));
}

TEST(ModuleStageDefaults, WorkersAreCpusCappedAtEight) {
    int cpus = static_cast<int>(std::thread::hardware_concurrency());
    EXPECT_EQ(DefaultModuleWorkers(), std::clamp(cpus, 1, 8));
}

// One collector (issue 23): `peinit plan` on a tree and the boot on the same tree (config stage,
// then module stage) plan the same requests with the same origins.
TEST_F(ModuleStageTest, PeinitPlanAndTheBootCollectTheSamePlanInput) {
    fs::create_directories(root_ / "etc/peinit/units");
    fs::create_directories(root_ / "proc");
    std::ofstream(root_ / "etc/peinit/units/storage.toml")
        << "[[module]]\nname = \"fs-ext4\"\n\n[[module]]\nname = \"opt_mod\"\noptions = \"d=4\"\n";
    std::ofstream(root_ / "etc/peinit/units/extra.conf") << "bl_hive_user\ndia_top\n";
    std::ofstream(root_ / "etc/peinit/hive.toml")
        << "['Machine\\System\\Modules']\nBlacklist = [\"bl_hive\"]\n";
    const std::string cmdline = "opt_mod.b=5 modules_load=soft_main modprobe.blacklist=dia_left";
    std::ofstream(root_ / "proc/cmdline") << cmdline << "\n";
    WriteAllPackage();
    ASSERT_TRUE(RunConfig(ctx_)) << log_.str();
    Run();

    auto requested_by = [](const std::string& json) {
        std::map<std::string, std::vector<std::string>> out;
        testing::TestJson doc(json);
        for (std::size_t i = 0; i < doc.Size("modules"); ++i) {
            const std::string at = "modules." + std::to_string(i);
            auto& chains = out[doc.Str(at + ".name")];
            for (std::size_t j = 0; j < doc.Size(at + ".requested_by"); ++j) {
                chains.push_back(doc.Str(at + ".requested_by." + std::to_string(j)));
            }
        }
        return out;
    };
    auto boot = requested_by(Record());
    auto r = testing::RunCommand({testing::PeinitBinary().string(), "plan", "--root",
                                  root_.string(), "--kver", testing::kFixtureKver, "--cmdline",
                                  cmdline, "--json"});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    auto tool = requested_by(r.out);
    EXPECT_EQ(tool, boot);
    EXPECT_THAT(boot["ext4"], ElementsAre("unit storage -> alias fs-ext4"));
    EXPECT_THAT(boot["opt_mod"], ElementsAre("unit storage"));
    EXPECT_THAT(boot["bl_hive_user"], ElementsAre("unit extra"));
    EXPECT_THAT(boot["soft_main"], ElementsAre("modules_load="));
    EXPECT_EQ(boot.count("dia_left"), 1u);
}

// The image's stored plan (peinit/core/stored_plan.h), as peinit-image build writes it: `input`
// planned against this root's tree, signed by `key` (the trusted key by default); `edit` changes
// the text after it was signed.
void WriteStoredPlanFor(const fs::path& root, const PlanInput& input, const SigningKey& key,
                        const std::string& kver,
                        const std::function<void(std::string&)>& edit = {}) {
    auto db = KmodDb::Open(root, testing::kFixtureKver);
    ASSERT_TRUE(db) << db.error().message();
    auto recorded = RecordPlan(**db, input, root.string(), kver);
    ASSERT_TRUE(recorded) << recorded.error().message();
    std::string text = recorded->stored.ToToml();
    auto sig = SignManifest(std::as_bytes(std::span(text.data(), text.size())), key);
    ASSERT_TRUE(sig) << sig.error().message();
    if (edit) edit(text);
    std::ofstream(root / "etc/peinit/plan.toml") << text;
    std::ofstream(root / "etc/peinit/plan.toml.sig") << *sig;
}

class StoredPlanStageTest : public ModuleStageTest {
  protected:
    void SetUp() override {
        ModuleStageTest::SetUp();
        SetUnits({{"storage", ModulesToml({"ext4", "soft_main", "dia_top"})},
                  {"extra", "[[module]]\nname = \"opt_mod\"\noptions = \"d=4\"\n"}});
        WriteAllPackage();
    }
    PlanInput Input() const { return CollectBootPlanInput(ctx_.units, ctx_.policy, ctx_.cmdline).input; }
    std::string PlanSource() {
        testing::TestJson doc(Record());
        return doc.Has("plan_source") ? doc.Str("plan_source") : "(none)";
    }
    // Every outcome's module, status and chains, in plan order.
    std::vector<std::string> Outcomes() const {
        std::vector<std::string> out;
        for (const auto& o : ctx_.module_outcomes) {
            std::string line = o.module + " " + std::string(ToString(o.status));
            for (const auto& c : o.requested_by) line += " [" + c + "]";
            for (const auto& w : o.waits_for) line += " <" + w;
            out.push_back(line);
        }
        return out;
    }
};

// Acceptance (issue 26): the stored plan is what boot-time planning produces for the same
// inputs, and with it the stage plans without libkmod: its context is opened once, on a thread
// beside the loads, and coldplug's lookups (the session's Db) take that one.
TEST_F(StoredPlanStageTest, StoredPlanIsUsedAndPlansWhatLibkmodWould) {
    ctx_.policy.workers.value = 1;
    WriteStoredPlanFor(root_, Input(), *key_, testing::kFixtureKver);
    Run();
    EXPECT_THAT(log_.str(), HasSubstr("modules: planned from the image's stored plan "
                                      "/etc/peinit/plan.toml (kernel " +
                                      std::string(testing::kFixtureKver) + ", signer " +
                                      key_->public_key().fingerprint.substr(0, 16) +
                                      "), without libkmod"));
    EXPECT_EQ(PlanSource(), "stored");
    EXPECT_EQ(ctx_.modload->counters().db_opens, 1);
    auto db = ctx_.modload->Db();
    ASSERT_TRUE(db) << db.error().message();
    EXPECT_EQ((*db)->Lookup("ext4").value_or(std::vector<std::string>{}),
              std::vector<std::string>{"ext4"});
    EXPECT_EQ(ctx_.modload->counters().db_opens, 1);
    const auto stored = Outcomes();
    const auto stored_loads = LoadNames();
    ASSERT_FALSE(stored_loads.empty());

    // The same boot without the stored plan: libkmod plans, with the same result.
    fs::remove(root_ / "etc/peinit/plan.toml");
    FakeKernel kernel;
    BootContext ctx{kernel};
    ctx.paths = ctx_.paths;
    ctx.kernel_release = ctx_.kernel_release;
    ctx.policy = ctx_.policy;
    ctx.units = ctx_.units;
    ASSERT_TRUE(RunModules(ctx));
    EXPECT_THAT(log_.str(), HasSubstr("modules: no stored plan (/etc/peinit/plan.toml: the image "
                                      "has none): planning at boot with libkmod"));
    EXPECT_EQ(ctx.modload->counters().db_opens, 1);
    std::swap(ctx_.module_outcomes, ctx.module_outcomes);
    EXPECT_EQ(Outcomes(), stored);
    std::vector<std::string> loads;
    for (const auto& c : kernel.Calls(KernelOp::kInitModule)) loads.push_back(c.name);
    EXPECT_EQ(loads, stored_loads);
}

// The running command line still tightens the stored plan: its blacklist and options apply.
TEST_F(StoredPlanStageTest, CommandLineBlacklistAndOptionsStillApply) {
    WriteStoredPlanFor(root_, Input(), *key_, testing::kFixtureKver);
    ctx_.cmdline = ParseCmdline("modprobe.blacklist=jbd2 opt_mod.b=5");
    ctx_.policy = ComputeEffectivePolicy(ctx_.hive, ctx_.cmdline);
    Run();
    EXPECT_EQ(PlanSource(), "stored");
    EXPECT_EQ(Outcome("jbd2").status, Status::kBlacklisted);
    EXPECT_EQ(Outcome("ext4").status, Status::kSkipped);
    EXPECT_THAT(LoadNames(), Not(Contains("jbd2")));
    EXPECT_THAT(LoadNames(), Not(Contains("ext4")));
    CacheLoads();
    ASSERT_NE(LoadOf("opt_mod"), nullptr);
    EXPECT_THAT(LoadOf("opt_mod")->args, HasSubstr("b=5"));
}

// Acceptance (issue 26): a stored plan for another kernel release is not used; the stage plans
// at boot and says so, in the log and the record.
TEST_F(StoredPlanStageTest, OtherKernelReleaseFallsBackAndSaysSo) {
    WriteStoredPlanFor(root_, Input(), *key_, "6.1.0-99-other");
    Run();
    const std::string why = "/etc/peinit/plan.toml: wrong-kernel-release: planned for kernel "
                            "6.1.0-99-other, this kernel is " +
                            std::string(testing::kFixtureKver);
    EXPECT_THAT(log_.str(), HasSubstr("modules: stored plan not used (" + why +
                                      "): planning at boot with libkmod"));
    EXPECT_EQ(PlanSource(), "boot: " + why);
    EXPECT_EQ(ctx_.modload->counters().db_opens, 1);
    EXPECT_EQ(Outcome("ext4").status, Status::kLoaded);
}

// Acceptance (issue 26), fail-closed: a stored plan changed after it was signed, one without a
// signature and one signed by an untrusted key are refused; nothing of them is used.
TEST_F(StoredPlanStageTest, TamperedUnsignedOrUntrustedStoredPlanIsRefused) {
    WriteStoredPlanFor(root_, Input(), *key_, testing::kFixtureKver, [](std::string& text) {
        auto at = text.find("a=1 b=2");  // opt_mod's modprobe.d options
        ASSERT_NE(at, std::string::npos) << text;
        text.replace(at, 7, "a=1 b=7");
    });
    Run();
    EXPECT_THAT(log_.str(), HasSubstr("modules: stored plan not used (/etc/peinit/plan.toml: "
                                      "bad-signature: the signature by " +
                                      key_->public_key().fingerprint +
                                      " does not match /etc/peinit/plan.toml): planning at boot "
                                      "with libkmod"));
    EXPECT_THAT(PlanSource(), StartsWith("boot: /etc/peinit/plan.toml: bad-signature: "));
    CacheLoads();
    ASSERT_NE(LoadOf("opt_mod"), nullptr);
    EXPECT_THAT(LoadOf("opt_mod")->args, HasSubstr("d=4"));
    EXPECT_THAT(LoadOf("opt_mod")->args, Not(HasSubstr("b=7")));

    fs::remove(root_ / "etc/peinit/plan.toml.sig");
    Run();
    EXPECT_THAT(PlanSource(), StartsWith("boot: /etc/peinit/plan.toml: unsigned: no signature ("));

    auto other = SigningKey::Generate();
    ASSERT_TRUE(other);
    WriteStoredPlanFor(root_, Input(), *other, testing::kFixtureKver);
    Run();
    EXPECT_EQ(PlanSource(), "boot: /etc/peinit/plan.toml: untrusted-key: signed by key " +
                                other->public_key().fingerprint + ", which is not trusted");
}

// A request the build never planned (a new modules_load=) is not answered by the stored plan:
// the stage plans at boot.
TEST_F(StoredPlanStageTest, RequestTheStoredPlanDoesNotCoverFallsBack) {
    WriteStoredPlanFor(root_, Input(), *key_, testing::kFixtureKver);
    ctx_.cmdline = ParseCmdline("modules_load=crc16");
    Run();
    EXPECT_THAT(PlanSource(), StartsWith("boot: /etc/peinit/plan.toml: the stored plan has no "
                                         "answer for \"crc16\""));
    EXPECT_EQ(Outcome("crc16").status, Status::kLoaded);
}

}  // namespace
}  // namespace peinit
