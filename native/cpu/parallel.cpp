#include "cpu/parallel.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace l2e {
namespace {

thread_local bool t_in_pool = false;

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; i++) workers_.emplace_back([this, i] { loop(i); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      gen_++;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }

  void run(int parts, const std::function<void(int)>& job) {
    std::lock_guard<std::mutex> serial(run_mu_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = &job;
      parts_ = parts;
      pending_ = parts - 1;
      gen_++;
    }
    cv_.notify_all();
    t_in_pool = true;
    job(0);
    t_in_pool = false;
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void loop(int idx) {
    t_in_pool = true;
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_ != seen; });
        seen = gen_;
        if (stop_) return;
        if (idx >= parts_) continue;
        job = job_;
      }
      (*job)(idx);
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (--pending_ == 0) done_cv_.notify_one();
      }
    }
  }

  int n_;
  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int)>* job_ = nullptr;
  int parts_ = 0, pending_ = 0;
  uint64_t gen_ = 0;
  bool stop_ = false;
};

Pool& pool() {
  static Pool p(num_threads());
  return p;
}

}  // namespace

int num_threads() {
  static int n = [] {
    const char* e = std::getenv("L2E_NUM_THREADS");
    int v = e ? std::atoi(e) : 0;
    if (v <= 0) v = int(std::thread::hardware_concurrency());
    return std::max(1, std::min(v, 256));
  }();
  return n;
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
