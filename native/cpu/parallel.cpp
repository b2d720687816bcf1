#include "cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace l2e {
namespace {

thread_local bool t_in_pool = false;

// A whole number from 0 to hi in an environment variable, fallback when it is unset or empty; any
// other text throws Error naming the variable, its value and what it takes.
int setting(const char* name, int hi, int fallback, const char* expected) {
  const char* e = std::getenv(name);
  if (!e || !*e) return fallback;
  const std::string v(e);
  if (v.find_first_not_of("0123456789") != std::string::npos || v.size() > 9 || std::stol(v) > hi)
    throw Error(std::string(name) + "=" + v + ": expected " + expected);
  return int(std::stol(v));
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// True once ready() holds, false when `us` microseconds passed first.
template <class Ready>
bool spin_until(const Ready& ready, int us) {
  if (ready()) return true;
  if (us == 0) return false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::microseconds(us);
  for (;;) {
    for (int i = 0; i < 64; i++) {
      if (ready()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= end) return ready();
  }
}

// The caller's thread runs part 0 of a region, worker i part i. A region is handed out by storing a new
// ticket (its number and its part count in one word): a worker reads both at once, so one that takes
// no part in a region never reads its job, and the caller cannot start the next region before every
// worker with a part has finished (pending_). Both waits (a worker's for the next ticket, the caller's
// for pending_ to reach 0) spin for spin_ microseconds first, since the next region usually follows within
// microseconds, and then sleep on a condition variable. A sleeper announces itself (sleepers_,
// caller_sleeps_) under mu_ before its last look; the other side changes the condition, then wakes it
// only if it saw the announcement. All four are sequentially consistent, so in their single order one
// side always sees the other's write: no wake-up is lost.
class Pool {
 public:
  Pool(int n, int spin) : spin_(spin) {
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    publish(kStop);
    for (auto& t : workers_) t.join();
  }

  void run(int parts, const std::function<void(int)>& job) {
    std::lock_guard<std::mutex> serial(run_mu_);  // one parallel region at a time
    job_ = &job;
    pending_.store(parts - 1, std::memory_order_relaxed);
    publish(uint64_t(parts));
    t_in_pool = true;
    job(0);
    t_in_pool = false;
    const auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
    if (!spin_until(done, spin_)) {
      std::unique_lock<std::mutex> lk(mu_);
      caller_sleeps_.store(true);
      done_cv_.wait(lk, done);
      caller_sleeps_.store(false);
    }
    job_ = nullptr;
  }

 private:
  static constexpr uint64_t kPartsMask = 0xffff, kStop = kPartsMask;  // at most 256 threads (num_threads)

  void publish(uint64_t parts) {
    ticket_.store(((ticket_.load(std::memory_order_relaxed) >> 16) + 1) << 16 | parts);
    if (sleepers_.load() > 0) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_.notify_all();
    }
  }

  void loop(int idx) {
    t_in_pool = true;
    uint64_t seen = 0;
    for (;;) {
      const auto fresh = [&] { return ticket_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(fresh, spin_)) {
        std::unique_lock<std::mutex> lk(mu_);
        sleepers_.fetch_add(1);
        cv_.wait(lk, [&] { return ticket_.load() != seen; });
        sleepers_.fetch_sub(1);
      }
      seen = ticket_.load(std::memory_order_acquire);
      const uint64_t parts = seen & kPartsMask;
      if (parts == kStop) return;
      if (uint64_t(idx) >= parts) continue;  // not in this region: its job is not ours to read
      (*job_)(idx);
      if (pending_.fetch_sub(1) == 1 && caller_sleeps_.load()) {
        std::lock_guard<std::mutex> lk(mu_);
        done_cv_.notify_one();
      }
    }
  }

  int spin_;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  std::atomic<uint64_t> ticket_{0};
  std::atomic<int> pending_{0}, sleepers_{0};
  std::atomic<bool> caller_sleeps_{false};
};

Pool& pool() {
  static Pool p(num_threads(), spin_us());
  return p;
}

}  // namespace

int num_threads() {
  static const int n = [] {
    const int v = setting("L2E_NUM_THREADS", 256, 0, "a whole number of threads from 0 to 256 (0 or unset: one for each core)");
    return v > 0 ? v : std::max(1, std::min(int(std::thread::hardware_concurrency()), 256));
  }();
  return n;
}

int spin_us() {
  static const int us = setting("L2E_CPU_SPIN_US", 100000, 50, "microseconds from 0 to 100000 (0: sleep at once)");
  return us;
}

void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t parts = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
  if (parts <= 1 || t_in_pool) {
    fn(0, n, 0);
    return;
  }
  const int64_t chunk = (n + parts - 1) / parts;
  // An exception escaping a pool thread would terminate the process, and one escaping the caller's
  // share would leave the workers running a destroyed job: keep the first and rethrow it here.
  std::exception_ptr error;
  std::mutex error_mu;
  std::function<void(int)> job = [&](int i) {
    int64_t b = int64_t(i) * chunk, e = std::min(n, b + chunk);
    try {
      if (b < e) fn(b, e, i);
    } catch (...) {
      std::lock_guard<std::mutex> lk(error_mu);
      if (!error) error = std::current_exception();
    }
  };
  pool().run(int(parts), job);
  if (error) std::rethrow_exception(error);
}

}  // namespace l2e
