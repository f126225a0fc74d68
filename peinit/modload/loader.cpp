#include "peinit/modload/loader.h"

#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

namespace peinit {

namespace {

using Clock = std::chrono::steady_clock;
using State = JobResult::State;

// What a worker is doing, for SleepingWorkers: only one in its load can be a module init that
// sleeps (not one blocked on the scheduler's lock, nor one waiting for its input).
enum class Activity { kScheduling, kLoading, kWaitingForInput };

// The calling worker's activity, null off the workers (LoaderInputWait).
thread_local std::atomic<Activity>* t_activity = nullptr;

// Longest chain of work from each job to the end of the graph. Dependencies have earlier
// indices (plan order), so one backward pass sees every dependent first.
std::vector<std::size_t> Chains(const std::vector<LoadJob>& jobs) {
    std::vector<std::size_t> chain(jobs.size(), 0);
    for (std::size_t j = jobs.size(); j-- > 0;) {
        chain[j] += jobs[j].builtin ? 0 : std::max<std::size_t>(jobs[j].cost, 1);
        for (const auto* deps : {&jobs[j].hard, &jobs[j].soft}) {
            for (std::size_t d : *deps) {
                if (d < j) chain[d] = std::max(chain[d], chain[j]);
            }
        }
    }
    return chain;
}

// Whether RunLoader orders ready jobs critical path first (more than one worker possible).
bool CriticalFirst(const std::vector<LoadJob>& jobs, int workers, int max_workers) {
    const auto loads = static_cast<std::size_t>(
        std::count_if(jobs.begin(), jobs.end(), [](const LoadJob& j) { return !j.builtin; }));
    const int most = std::max(max_workers, std::max(workers, 1));
    return std::min(static_cast<std::size_t>(most), loads) > 1;
}

// Whether thread `tid` of this process is blocked (S or D); false when unknown.
bool Blocked(int tid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    const char* paren = std::strrchr(buf, ')');  // the command name may hold anything
    if (paren == nullptr || paren[1] != ' ') return false;
    return paren[2] == 'S' || paren[2] == 'D';
}

class Scheduler {
  public:
    Scheduler(const std::vector<LoadJob>& jobs, const std::vector<LoaderUnit>& units,
              const std::function<LoadAttempt(std::size_t)>& load, Clock::time_point origin,
              bool critical_first)
        : jobs_(jobs), units_(units), load_(load), origin_(origin), critical_first_(critical_first) {
        report_.results.resize(jobs.size());
        unit_unsettled_.assign(units.size(), 0);
        chain_ = Chains(jobs);
        for (std::size_t j = 0; j < jobs.size(); ++j) {
            if (jobs[j].builtin) {
                report_.results[j].state = State::kLive;
                report_.results[j].start = Now();
                continue;
            }
            ++unsettled_;
            if (Owned(j)) ++unit_unsettled_[jobs[j].unit];
        }
    }

    // One worker: picks ready jobs and runs them until every job is settled.
    void Work() {
        std::unique_lock lock(mutex_);
        clockid_t clock;
        if (pthread_getcpuclockid(pthread_self(), &clock) == 0) {
            workers_.emplace_back(clock, static_cast<int>(gettid()));
            t_activity = &workers_.back().activity;
        }
        struct Untrack {
            ~Untrack() { t_activity = nullptr; }
        } untrack;
        auto set_activity = [](Activity a) {
            if (t_activity != nullptr) t_activity->store(a);
        };
        while (true) {
            if (auto j = Pick()) {
                JobResult& r = report_.results[*j];
                r.state = State::kRunning;
                r.start = Now();
                r.ready = ReadyTime(*j);
                ++in_flight_;
                lock.unlock();
                set_activity(Activity::kLoading);
                LoadAttempt attempt = Contained(*j);
                set_activity(Activity::kScheduling);
                auto end = Now();
                lock.lock();
                --in_flight_;
                r.duration = end - r.start;
                r.state = attempt.ok ? State::kLive : State::kFailed;
                r.attempt = std::move(attempt);
                Settle(*j);
                changed_.notify_all();
                continue;
            }
            if (unsettled_ == 0) {
                changed_.notify_all();
                return;
            }
            changed_.wait(lock);
        }
    }

    LoaderReport TakeReport() { return std::move(report_); }

    // Waits up to `timeout` for a change; true once every job is settled.
    bool WaitSettled(std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        changed_.wait_for(lock, timeout, [&] { return unsettled_ == 0; });
        return unsettled_ == 0;
    }

    // How many workers are asleep: blocked (state S or D in /proc/self/task/TID/stat) and
    // without CPU time since the last call. A worker that is runnable but waits for a CPU is
    // not asleep, so CPU-bound loads never count, however busy the machine is. Only a worker
    // in its load counts: not one waiting for its input (LoaderInputWait) or blocked on the
    // scheduler's own lock.
    int SleepingWorkers() {
        std::lock_guard lock(mutex_);
        int sleeping = 0;
        for (Worker& w : workers_) {
            timespec ts{};
            if (clock_gettime(w.clock, &ts) != 0) continue;
            const auto cpu = std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
            const bool idle_cpu = cpu - w.cpu < std::chrono::milliseconds(1);
            w.cpu = cpu;
            if (idle_cpu && w.activity.load() == Activity::kLoading && Blocked(w.tid)) {
                ++sleeping;
            }
        }
        return sleeping;
    }

    // Whether another worker would start a job now: every worker is busy with a load and a job
    // is ready (never inside a sequential unit, which runs one job at a time).
    bool Starved(int threads) {
        std::lock_guard lock(mutex_);
        if (in_flight_ < threads || active_ >= 0) return false;
        for (std::size_t j = 0; j < jobs_.size(); ++j) {
            if (Pending(j) && !Sequential(j) && DepsReady(j) && GateOpen(jobs_[j].unit)) {
                return true;
            }
        }
        return false;
    }

  private:
    // The load callback, with an exception (a bug, std::bad_alloc) turned into a failed load
    // with its reason: a worker thread that let it escape would terminate PID 1.
    LoadAttempt Contained(std::size_t j) noexcept {
        try {
            return load_(j);
        } catch (const std::exception& e) {
            return Unexpected(e.what());
        } catch (...) {
            return Unexpected("unknown");
        }
    }
    static LoadAttempt Unexpected(const char* what) {
        LoadAttempt a;
        a.message = std::string("unexpected exception: ") + what;
        a.cause = "unexpected exception";
        return a;
    }

    std::chrono::microseconds Now() const {
        return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - origin_);
    }
    bool Owned(std::size_t j) const {
        return jobs_[j].unit >= 0 && static_cast<std::size_t>(jobs_[j].unit) < units_.size();
    }
    bool Sequential(std::size_t j) const {
        return Owned(j) && !units_[jobs_[j].unit].sequence.empty();
    }
    bool Settled(std::size_t j) const {
        State s = report_.results[j].state;
        return s == State::kLive || s == State::kFailed || s == State::kSkipped;
    }
    bool Pending(std::size_t j) const { return report_.results[j].state == State::kPending; }
    // When the last dependency of j was settled (0 without dependencies).
    std::chrono::microseconds ReadyTime(std::size_t j) const {
        std::chrono::microseconds ready{0};
        for (const auto* deps : {&jobs_[j].hard, &jobs_[j].soft}) {
            for (std::size_t d : *deps) {
                const JobResult& r = report_.results[d];
                ready = std::max(ready, r.start + r.duration);
            }
        }
        return ready;
    }

    void Settle(std::size_t j) {
        --unsettled_;
        if (Owned(j)) --unit_unsettled_[jobs_[j].unit];
    }

    // Every hard dependency live and every soft one attempted.
    bool DepsReady(std::size_t j) const {
        for (std::size_t d : jobs_[j].hard) {
            if (report_.results[d].state != State::kLive) return false;
        }
        for (std::size_t d : jobs_[j].soft) {
            if (!Settled(d)) return false;
        }
        return true;
    }
    bool DepsSettled(std::size_t j) const {
        for (const auto* deps : {&jobs_[j].hard, &jobs_[j].soft}) {
            for (std::size_t d : *deps) {
                if (!Settled(d)) return false;
            }
        }
        return true;
    }
    bool GateOpen(int unit) const {
        if (unit < 0 || static_cast<std::size_t>(unit) >= units_.size()) return true;
        for (int v : units_[unit].after) {
            if (v >= 0 && static_cast<std::size_t>(v) < units_.size() && unit_unsettled_[v] > 0) {
                return false;
            }
        }
        return true;
    }
    // A sequential unit may take over once its `after` units are done and everything its jobs
    // need from outside the unit has been attempted.
    bool BarrierReady(int unit) const {
        if (!GateOpen(unit)) return false;
        for (std::size_t j : units_[unit].sequence) {
            for (const auto* deps : {&jobs_[j].hard, &jobs_[j].soft}) {
                for (std::size_t d : *deps) {
                    if (jobs_[d].unit != unit && !Settled(d)) return false;
                }
            }
        }
        return true;
    }

    // Skips every pending job with a failed or skipped hard dependency, naming the root cause.
    void SkipPass() {
        bool again = true;
        while (again) {
            again = false;
            for (std::size_t j = 0; j < jobs_.size(); ++j) {
                if (!Pending(j)) continue;
                for (std::size_t d : jobs_[j].hard) {
                    const JobResult& dep = report_.results[d];
                    if (dep.state != State::kFailed && dep.state != State::kSkipped) continue;
                    JobResult& r = report_.results[j];
                    r.state = State::kSkipped;
                    r.start = Now();
                    r.skip_reason =
                        dep.state == State::kFailed
                            ? "dependency " + jobs_[d].name + " failed (" + dep.attempt.cause + ")"
                            : dep.skip_reason;
                    Settle(j);
                    again = true;
                    break;
                }
            }
        }
    }

    std::optional<std::size_t> Pick() {
        SkipPass();
        if (active_ >= 0) {
            bool done = true;
            for (std::size_t j : units_[active_].sequence) {
                if (Settled(j)) continue;
                done = false;
                if (Pending(j) && in_flight_ == 0 && DepsReady(j)) return j;
                break;
            }
            if (!done) return Stalled();
            active_ = -1;
        }
        for (std::size_t u = 0; u < units_.size(); ++u) {
            if (units_[u].sequence.empty() || unit_unsettled_[u] == 0) continue;
            if (!BarrierReady(static_cast<int>(u))) continue;
            if (in_flight_ > 0) return std::nullopt;  // drain first; start nothing else
            active_ = static_cast<int>(u);
            return Pick();
        }
        std::optional<std::size_t> best;
        for (std::size_t j = 0; j < jobs_.size(); ++j) {
            if (Pending(j) && !Sequential(j) && DepsReady(j) && GateOpen(jobs_[j].unit) &&
                (!best || chain_[j] > chain_[*best])) {
                best = j;
                if (!critical_first_) break;  // one worker: plan order
            }
        }
        return best ? best : Stalled();
    }

    // Nothing may start. If nothing is in flight either, the unit ordering contradicts the
    // dependency graph: start the earliest job whose dependencies have been attempted.
    std::optional<std::size_t> Stalled() {
        if (in_flight_ > 0 || unsettled_ == 0) return std::nullopt;
        for (std::size_t j = 0; j < jobs_.size(); ++j) {
            if (!Pending(j) || !DepsSettled(j)) continue;
            report_.warnings.push_back("unit ordering conflicts with the dependencies of " +
                                       jobs_[j].name + "; starting it anyway");
            return j;
        }
        return std::nullopt;  // unreachable for a plan in load order
    }

    const std::vector<LoadJob>& jobs_;
    const std::vector<LoaderUnit>& units_;
    const std::function<LoadAttempt(std::size_t)>& load_;
    const Clock::time_point origin_;
    const bool critical_first_;

    std::mutex mutex_;
    std::condition_variable changed_;
    struct Worker {
        Worker(clockid_t c, int t) : clock(c), tid(t) {}
        clockid_t clock;
        int tid;
        std::chrono::nanoseconds cpu{0};  // CPU time at the last SleepingWorkers()
        std::atomic<Activity> activity{Activity::kScheduling};
    };
    std::deque<Worker> workers_;  // a deque: a worker's activity never moves
    LoaderReport report_;
    std::vector<int> unit_unsettled_;
    std::vector<std::size_t> chain_;  // per job: its cost plus the costliest chain after it
    std::size_t unsettled_ = 0;
    int in_flight_ = 0;
    int active_ = -1;  // the sequential unit running, -1 for none
};

}  // namespace

std::vector<std::size_t> ExpectedStartOrder(const std::vector<LoadJob>& jobs, int workers,
                                            int max_workers) {
    const bool critical_first = CriticalFirst(jobs, workers, max_workers);
    const std::vector<std::size_t> chain = Chains(jobs);
    std::vector<char> started(jobs.size(), 0);
    for (std::size_t j = 0; j < jobs.size(); ++j) started[j] = jobs[j].builtin;
    std::vector<std::size_t> order;
    while (true) {
        std::optional<std::size_t> best;
        for (std::size_t j = 0; j < jobs.size(); ++j) {
            if (started[j]) continue;
            bool ready = true;
            for (const auto* deps : {&jobs[j].hard, &jobs[j].soft}) {
                for (std::size_t d : *deps) ready = ready && (d >= j || started[d]);
            }
            if (ready && (!best || chain[j] > chain[*best])) {
                best = j;
                if (!critical_first) break;
            }
        }
        if (!best) return order;
        started[*best] = 1;
        order.push_back(*best);
    }
}

LoaderInputWait::LoaderInputWait() {
    if (t_activity != nullptr) {
        previous_ = static_cast<int>(t_activity->exchange(Activity::kWaitingForInput));
    }
}

LoaderInputWait::~LoaderInputWait() {
    if (t_activity != nullptr) t_activity->store(static_cast<Activity>(previous_));
}

LoaderReport RunLoader(const std::vector<LoadJob>& jobs, const std::vector<LoaderUnit>& units,
                       int workers, const std::function<LoadAttempt(std::size_t)>& load,
                       std::chrono::steady_clock::time_point origin, int max_workers) {
    const std::size_t loads =
        std::count_if(jobs.begin(), jobs.end(), [](const LoadJob& j) { return !j.builtin; });
    workers = std::max(workers, 1);
    const std::size_t most =
        std::min<std::size_t>(static_cast<std::size_t>(std::max(max_workers, workers)), loads);
    Scheduler scheduler(jobs, units, load, origin, CriticalFirst(jobs, workers, max_workers));
    const std::size_t want = std::min<std::size_t>(static_cast<std::size_t>(workers), most);
    std::vector<std::thread> threads;
    std::string thread_error;
    auto spawn = [&] {
        try {
            threads.emplace_back([&scheduler] { scheduler.Work(); });
            return true;
        } catch (const std::system_error& e) {
            thread_error = e.what();
            return false;
        }
    };
    if (most > 1) {
        for (std::size_t i = 0; i < want && spawn(); ++i) {
        }
    }
    // More workers only while the loads in flight leave CPUs idle (module inits that sleep):
    // every worker busy, a job ready, and fewer workers awake than CPUs.
    constexpr std::chrono::milliseconds kTick{10};
    const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    // The workers' states are read from /proc only when a worker could be added (the pool below
    // its bound, every worker busy and a job ready): those reads cost CPU the loads need.
    if (!threads.empty() && most > threads.size()) {
        while (threads.size() < most && !scheduler.WaitSettled(kTick)) {
            const int n = static_cast<int>(threads.size());
            if (!scheduler.Starved(n)) continue;
            const int sleeping = scheduler.SleepingWorkers();
            if (sleeping > 0 && n - sleeping < cpus && !spawn()) break;
        }
    }
    // No thread (one worker, or none could be created): load on this thread, in plan order.
    if (threads.empty()) scheduler.Work();
    for (auto& t : threads) t.join();
    LoaderReport report = scheduler.TakeReport();
    report.threads = static_cast<int>(threads.size());
    if (!thread_error.empty()) {
        report.warnings.push_back("could create only " + std::to_string(threads.size()) +
                                  " worker threads: " + thread_error);
    }
    return report;
}

}  // namespace peinit
