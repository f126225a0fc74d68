// The parallel loader (peinit/modload/loader.h) on its own: the order jobs start in, what a
// failed dependency does to its dependents, that nothing runs twice, and that a throwing load
// fails only its job. No kernel: the load callback records and answers.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "peinit/modload/loader.h"

namespace peinit {
namespace {

using ::testing::ElementsAre;
using State = JobResult::State;

// Records the order of loads (thread-safe) and fails the jobs named in `fail` with `cause`.
struct Recorder {
    explicit Recorder(const std::vector<LoadJob>& j, std::vector<std::string> failing = {})
        : jobs(j), fail(std::move(failing)), calls(j.size(), 0) {}

    const std::vector<LoadJob>& jobs;
    std::vector<std::string> fail;
    std::string cause = "EKEYREJECTED";
    std::mutex mu;
    std::vector<std::string> order;
    std::vector<int> calls;

    LoadAttempt operator()(std::size_t j) {
        {
            std::lock_guard lock(mu);
            order.push_back(jobs[j].name);
            ++calls[j];
        }
        // Long enough that independent jobs overlap on several workers.
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        LoadAttempt a;
        if (std::find(fail.begin(), fail.end(), jobs[j].name) != fail.end()) {
            a.error = 129;
            a.cause = cause;
            a.message = jobs[j].name + ": " + cause;
            return a;
        }
        a.ok = true;
        return a;
    }
    std::size_t Position(const std::string& name) const {
        return static_cast<std::size_t>(std::find(order.begin(), order.end(), name) -
                                        order.begin());
    }
};

LoaderReport RunJobs(const std::vector<LoadJob>& jobs, Recorder& rec, int workers,
                     const std::vector<LoaderUnit>& units = {}) {
    return RunLoader(
        jobs, units, workers, [&rec](std::size_t j) { return rec(j); },
        std::chrono::steady_clock::now());
}

// ext4's chain as the plan gives it: crc16, mbcache and jbd2 before ext4; virtio_blk alone.
std::vector<LoadJob> Ext4Chain() {
    std::vector<LoadJob> jobs(5);
    jobs[0].name = "crc16";
    jobs[1].name = "mbcache";
    jobs[2].name = "jbd2";
    jobs[3].name = "ext4";
    jobs[3].hard = {0, 1, 2};
    jobs[4].name = "virtio_blk";
    return jobs;
}

// Every module starts only after its hard dependencies are live, however many workers.
TEST(ModloadLoader, DependenciesAreLiveBeforeTheirUsersStart) {
    for (int workers : {1, 2, 4}) {
        auto jobs = Ext4Chain();
        Recorder rec(jobs);
        LoaderReport report = RunJobs(jobs, rec, workers);
        ASSERT_EQ(rec.order.size(), 5u) << workers;
        for (const char* dep : {"crc16", "mbcache", "jbd2"}) {
            EXPECT_LT(rec.Position(dep), rec.Position("ext4")) << dep << " workers=" << workers;
            EXPECT_LE(report.results[0].start + report.results[0].duration, report.results[3].start)
                << workers;
        }
        for (const auto& r : report.results) EXPECT_EQ(r.state, State::kLive);
    }
}

// One worker loads in exactly the plan's order, on PID 1's own thread.
TEST(ModloadLoader, OneWorkerKeepsThePlanOrderWithoutThreads) {
    auto jobs = Ext4Chain();
    Recorder rec(jobs);
    LoaderReport report = RunJobs(jobs, rec, 1);
    EXPECT_THAT(rec.order, ElementsAre("crc16", "mbcache", "jbd2", "ext4", "virtio_blk"));
    EXPECT_EQ(report.threads, 0);
}

// A failed dependency skips everything above it, transitively, each naming the module that
// failed and why; an unrelated job still loads, and nothing skipped is handed to the loader.
TEST(ModloadLoader, FailedDependencySkipsItsDependentsNamingIt) {
    auto jobs = Ext4Chain();
    LoadJob user;
    user.name = "ext4_user";
    user.hard = {3};
    jobs.push_back(user);
    Recorder rec(jobs, {"jbd2"});
    LoaderReport report = RunJobs(jobs, rec, 2);
    EXPECT_EQ(report.results[2].state, State::kFailed);
    EXPECT_EQ(report.results[2].attempt.cause, "EKEYREJECTED");
    EXPECT_EQ(report.results[3].state, State::kSkipped);
    EXPECT_EQ(report.results[3].skip_reason, "dependency jbd2 failed (EKEYREJECTED)");
    EXPECT_EQ(report.results[5].state, State::kSkipped);
    EXPECT_EQ(report.results[5].skip_reason, "dependency jbd2 failed (EKEYREJECTED)");
    EXPECT_EQ(report.results[4].state, State::kLive);
    EXPECT_EQ(rec.Position("ext4"), rec.order.size());
    EXPECT_EQ(rec.Position("ext4_user"), rec.order.size());
}

// A soft dependency only orders: its failure does not skip the module that wanted it.
TEST(ModloadLoader, FailedSoftDependencyOnlyOrders) {
    std::vector<LoadJob> jobs(2);
    jobs[0].name = "crc32c_generic";
    jobs[1].name = "btrfs";
    jobs[1].soft = {0};
    Recorder rec(jobs, {"crc32c_generic"});
    LoaderReport report = RunJobs(jobs, rec, 2);
    EXPECT_EQ(report.results[0].state, State::kFailed);
    EXPECT_EQ(report.results[1].state, State::kLive);
    EXPECT_THAT(rec.order, ElementsAre("crc32c_generic", "btrfs"));
}

// Many jobs on many workers: each is handed to the load callback exactly once, and a built-in is
// never loaded, its users start at once.
TEST(ModloadLoader, EachJobRunsOnceAndBuiltinsNever) {
    std::vector<LoadJob> jobs(24);
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        jobs[i].name = "m" + std::to_string(i);
        if (i >= 4) jobs[i].hard = {i % 4};
    }
    jobs[1].builtin = true;
    Recorder rec(jobs);
    LoaderReport report = RunJobs(jobs, rec, 4);
    for (std::size_t i = 0; i < jobs.size(); ++i) {
        EXPECT_EQ(rec.calls[i], i == 1 ? 0 : 1) << jobs[i].name;
        EXPECT_EQ(report.results[i].state, State::kLive) << jobs[i].name;
    }
    EXPECT_EQ(rec.order.size(), jobs.size() - 1);
}

// A load callback that throws fails its own job ("unexpected exception: WHAT") and skips its
// dependents; nothing escapes a worker and the other jobs load.
TEST(ModloadLoader, ThrowingLoadFailsOnlyItsJob) {
    auto jobs = Ext4Chain();
    std::atomic<int> calls{0};
    LoaderReport report = RunLoader(
        jobs, {}, 3,
        [&](std::size_t j) -> LoadAttempt {
            ++calls;
            if (jobs[j].name == "mbcache") throw std::runtime_error("injected");
            LoadAttempt a;
            a.ok = true;
            return a;
        },
        std::chrono::steady_clock::now());
    EXPECT_EQ(report.results[1].state, State::kFailed);
    EXPECT_EQ(report.results[1].attempt.message, "unexpected exception: injected");
    EXPECT_EQ(report.results[3].state, State::kSkipped);
    EXPECT_EQ(report.results[3].skip_reason, "dependency mbcache failed (unexpected exception)");
    EXPECT_EQ(report.results[4].state, State::kLive);
    EXPECT_EQ(calls.load(), 4);
}

// A sequential unit is a barrier: its jobs run one at a time in its order, and a job of a unit
// that is `after` it starts only once all of them were attempted.
TEST(ModloadLoader, SequentialUnitAndAfterAreHonoured) {
    std::vector<LoadJob> jobs(4);
    jobs[0].name = "seq_b";
    jobs[0].unit = 0;
    jobs[1].name = "seq_a";
    jobs[1].unit = 0;
    jobs[2].name = "later";
    jobs[2].unit = 1;
    jobs[3].name = "free";
    std::vector<LoaderUnit> units(2);
    units[0].sequence = {1, 0};
    units[1].after = {0};
    Recorder rec(jobs);
    LoaderReport report = RunJobs(jobs, rec, 3, units);
    EXPECT_LT(rec.Position("seq_a"), rec.Position("seq_b"));
    EXPECT_GT(rec.Position("later"), rec.Position("seq_b"));
    EXPECT_GE(report.results[2].start, report.results[0].start + report.results[0].duration);
    for (const auto& r : report.results) EXPECT_EQ(r.state, State::kLive);
}

}  // namespace
}  // namespace peinit
