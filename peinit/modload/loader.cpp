#include "peinit/modload/loader.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

namespace peinit {

namespace {

using Clock = std::chrono::steady_clock;
using State = JobResult::State;

class Scheduler {
  public:
    Scheduler(const std::vector<LoadJob>& jobs, const std::vector<LoaderUnit>& units,
              const std::function<LoadAttempt(std::size_t)>& load, Clock::time_point origin)
        : jobs_(jobs), units_(units), load_(load), origin_(origin) {
        report_.results.resize(jobs.size());
        unit_unsettled_.assign(units.size(), 0);
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
        while (true) {
            if (auto j = Pick()) {
                JobResult& r = report_.results[*j];
                r.state = State::kRunning;
                r.start = Now();
                r.ready = ReadyTime(*j);
                ++in_flight_;
                lock.unlock();
                LoadAttempt attempt = load_(*j);
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

  private:
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
        for (std::size_t j = 0; j < jobs_.size(); ++j) {
            if (Pending(j) && !Sequential(j) && DepsReady(j) && GateOpen(jobs_[j].unit)) return j;
        }
        return Stalled();
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

    std::mutex mutex_;
    std::condition_variable changed_;
    LoaderReport report_;
    std::vector<int> unit_unsettled_;
    std::size_t unsettled_ = 0;
    int in_flight_ = 0;
    int active_ = -1;  // the sequential unit running, -1 for none
};

}  // namespace

LoaderReport RunLoader(const std::vector<LoadJob>& jobs, const std::vector<LoaderUnit>& units,
                       int workers, const std::function<LoadAttempt(std::size_t)>& load,
                       std::chrono::steady_clock::time_point origin) {
    Scheduler scheduler(jobs, units, load, origin);
    std::size_t loads =
        std::count_if(jobs.begin(), jobs.end(), [](const LoadJob& j) { return !j.builtin; });
    std::size_t want = std::min<std::size_t>(static_cast<std::size_t>(std::max(workers, 1)), loads);
    std::vector<std::thread> threads;
    std::string thread_error;
    if (want > 1) {
        for (std::size_t i = 0; i < want; ++i) {
            try {
                threads.emplace_back([&scheduler] { scheduler.Work(); });
            } catch (const std::system_error& e) {
                thread_error = e.what();
                break;
            }
        }
    }
    // No thread (one worker, or none could be created): load on this thread, in plan order.
    if (threads.empty()) scheduler.Work();
    for (auto& t : threads) t.join();
    LoaderReport report = scheduler.TakeReport();
    report.threads = static_cast<int>(threads.size());
    if (!thread_error.empty()) {
        report.warnings.push_back("could create only " + std::to_string(threads.size()) + " of " +
                                  std::to_string(want) + " worker threads: " + thread_error);
    }
    return report;
}

}  // namespace peinit
