#pragma once

// The parallel module loader: runs the loads of a plan on a bounded pool of worker
// threads, as early as the dependency graph and the units' ordering allow.
//
// Rules, for jobs given in plan order (a valid load order):
// - A job starts once every `hard` job is live and every `soft` job has been attempted. A
//   failed or skipped hard dependency skips the job, with the root cause inherited
//   ("dependency jbd2 failed (EKEYREJECTED)"); soft edges (modprobe.d softdep pre/post) only
//   order, like the plan, which leaves out a soft dependency that cannot load.
// - Unit `after`: a job owned by unit U starts only when every job owned by a unit U is
//   (transitively) after has been attempted.
// - Unit `sequential = true` (a barrier): the loader stops starting other jobs, waits for the
//   loads in flight, then runs the unit's jobs one at a time in `sequence` order; nothing else
//   starts until the last of them has been attempted.
// - Each job runs at most once (no second load of a module loaded or in flight).
// - Among the jobs ready to start, a free worker takes the one with the longest chain of work
//   still behind it (its `cost` plus the costliest chain of jobs that wait for it: critical path
//   first, as list schedulers do), ties in plan order. With no costs given (all 0) every job
//   counts 1, so a job with more waiting on it goes first. The stage gives each job its
//   module's size: ext4's chain (jbd2, mbcache, ...) then starts before small leaf drivers
//   whose loads end sooner anyway. One worker (no room for more) loads in exactly the plan's
//   order: the order cannot change its total time.
// Should unit ordering ever contradict the dependency graph (a soft `post` edge across units),
// the loader does not deadlock: when nothing is in flight and nothing may start, it starts the
// earliest pending job whose dependencies have been attempted, and says so in `warnings`.
//
// Threads: all are created and joined inside Run (PID 1 is single-threaded before and after;
// its signals are blocked before any stage runs, so the workers inherit the blocked mask).
// A load callback that throws fails its job ("unexpected exception: WHAT"); nothing escapes a
// worker.
// With one worker and no room to add more, or one job, no thread is created. The `load` callback runs on the workers
// and must be thread-safe; it must not touch libkmod.

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace peinit {

struct LoadJob {
    std::string name;
    bool builtin = false;           // live from the start; never loaded
    std::vector<std::size_t> hard;  // must be live first (earlier indices)
    std::vector<std::size_t> soft;  // must have been attempted first (earlier indices)
    int unit = -1;                  // owning unit (index into LoaderUnits), -1 for none
    std::size_t cost = 0;           // estimated cost of the load (bytes); 0 counts as 1
};

struct LoaderUnit {
    // Units (indices) whose jobs must all have been attempted before this unit's jobs start;
    // transitively closed by the caller.
    std::vector<int> after;
    // Non-empty for a sequential unit: its jobs (all jobs with this unit) in the order they load.
    std::vector<std::size_t> sequence;
};

// What the load callback reports.
struct LoadAttempt {
    bool ok = false;
    bool already_loaded = false;  // EEXIST
    int error = 0;                // errno when the kernel refused it
    std::string message;          // full error text
    // What dependents name in their skip reason: "EKEYREJECTED", "package rejected", ...
    std::string cause;
    std::string package;
};

struct JobResult {
    enum class State { kPending, kRunning, kLive, kFailed, kSkipped };
    State state = State::kPending;
    LoadAttempt attempt;      // for jobs that ran
    std::string skip_reason;  // for skipped jobs: "dependency jbd2 failed (EKEYREJECTED)"
    std::chrono::microseconds start{0};
    std::chrono::microseconds duration{0};
    // When its dependencies had all been settled (0 without any): start - ready is the time it
    // waited for a worker or a unit gate.
    std::chrono::microseconds ready{0};
};

struct LoaderReport {
    std::vector<JobResult> results;  // one per job
    int threads = 0;                 // worker threads actually created (0: ran inline)
    std::vector<std::string> warnings;
};

// The order in which RunLoader with these `workers` and `max_workers` would start the jobs that
// load (built-ins left out) if every load took its cost and unit gates never held a job back:
// plan order on one worker, else critical path first among the jobs whose dependencies have
// been attempted. The boot checks package members in this order, so that the bytes a worker
// asks for next are the ones hashed first (PackageSet::StartStream).
std::vector<std::size_t> ExpectedStartOrder(const std::vector<LoadJob>& jobs, int workers,
                                            int max_workers);

// Runs every job on `workers` workers (at least 1). With `max_workers` above that, the loader
// adds workers (one per 10 ms tick, up to max_workers) while every worker is busy, a job is
// ready, some worker is asleep in its load (blocked, no CPU time for a tick: a module init that
// sleeps) and fewer workers are awake than there are CPUs. CPU-bound loads keep it at
// `workers`, even on a busy machine (a preempted worker is runnable, not asleep), and so does a
// worker that waits for its input (LoaderInputWait). Times are measured from `origin`.
LoaderReport RunLoader(const std::vector<LoadJob>& jobs, const std::vector<LoaderUnit>& units,
                       int workers, const std::function<LoadAttempt(std::size_t)>& load,
                       std::chrono::steady_clock::time_point origin, int max_workers = 0);

// While alive on a loader worker, that worker waits for its load's input (bytes another thread is
// hashing: PackageSet), not for the kernel: RunLoader does not count it as a load that sleeps,
// so it adds no worker for it (the CPU it leaves is the hashing thread's). On any other thread
// it does nothing.
class LoaderInputWait {
  public:
    LoaderInputWait();
    ~LoaderInputWait();
    LoaderInputWait(const LoaderInputWait&) = delete;
    LoaderInputWait& operator=(const LoaderInputWait&) = delete;

  private:
    int previous_ = 0;  // the worker's activity before (loader.cpp)
};

}  // namespace peinit
