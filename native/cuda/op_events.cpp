// Per-op timing of the CUDA backend (cpu/op_timing.h, enabled by the test addon's setOpTiming before
// a model is created): a decorator that records a pair of CUDA events on the backend's stream around
// every op-table call, the memory ops, and the DeviceStep's loss and optimizer step, so each op's
// time is the device's, not the launch's. Pairs are read without waiting once their end event has
// completed (cudaEventQuery), and all of them when the backend is destroyed; the bench reads the
// totals after disposing its model.
#include <cuda_runtime_api.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/op_flops.h"
#include "core/timed_step.h"
#include "cpu/op_timing.h"
#include "cuda/cuda_check.h"
#include "cuda/op_events.h"

namespace l2e {
namespace cuda {
namespace {

// Event pairs in flight, oldest first, and a free list of events.
class EventLog {
 public:
  explicit EventLog(cudaStream_t s) : stream_(s) {}
  ~EventLog() {
    drain(true);
    for (cudaEvent_t e : free_) cudaEventDestroy(e);
  }
  // Runs fn between two events recorded on the stream, filed under op with its FLOPs.
  template <typename Fn>
  auto time(const char* op, double flops, Fn&& fn) -> decltype(fn()) {
    drain(false);
    cudaEvent_t a = take(), b = take();
    L2E_CUDA_CHECK(cudaEventRecord(a, stream_));
    struct End {  // records the end event on every exit path
      EventLog& log;
      const char* op;
      double flops;
      cudaEvent_t a, b;
      ~End() {
        if (cudaEventRecord(b, log.stream_) == cudaSuccess) log.pending_.push_back({op, flops, a, b});
        else log.free_.insert(log.free_.end(), {a, b});
      }
    } end{*this, op, flops, a, b};
    return fn();
  }
  template <typename Fn>
  auto time(const char* op, Fn&& fn) -> decltype(fn()) {
    return time(op, 0.0, static_cast<Fn&&>(fn));
  }

 private:
  struct Pair {
    const char* op;
    double flops;
    cudaEvent_t a, b;
  };
  cudaEvent_t take() {
    if (!free_.empty()) {
      cudaEvent_t e = free_.back();
      free_.pop_back();
      return e;
    }
    cudaEvent_t e;
    L2E_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDefault));
    return e;
  }
  // Files the completed pairs (all of them, waiting, when `wait`).
  void drain(bool wait) {
    while (!pending_.empty()) {
      Pair& p = pending_.front();
      if (wait) cudaEventSynchronize(p.b);
      else if (cudaEventQuery(p.b) != cudaSuccess) break;
      float ms = 0;
      if (cudaEventElapsedTime(&ms, p.a, p.b) == cudaSuccess) add_op_time(p.op, ms * 1e-3, p.flops);
      free_.insert(free_.end(), {p.a, p.b});
      pending_.pop_front();
    }
    cudaGetLastError();  // cudaErrorNotReady is an answer, not an error
  }

  cudaStream_t stream_;
  std::deque<Pair> pending_;
  std::vector<cudaEvent_t> free_;
};

class EventTimedBackend final : public Backend {
 public:
  EventTimedBackend(std::unique_ptr<Backend> inner, cudaStream_t s) : b_(std::move(inner)), log_(s) {}
  std::string name() const override { return b_->name(); }
  DType act_dtype() const override { return b_->act_dtype(); }
  DType param_dtype() const override { return b_->param_dtype(); }

  Buf alloc(size_t numel, DType dtype) override { return b_->alloc(numel, dtype); }
  void free(Buf& b) override { b_->free(b); }
  void zero(Buf& b) override { log_.time("zero", [&] { b_->zero(b); }); }
  void upload(Buf& dst, const void* host, size_t numel, DType host_dtype) override {
    log_.time("upload", [&] { b_->upload(dst, host, numel, host_dtype); });
  }
  void download(const Buf& src, float* host) override { log_.time("download", [&] { b_->download(src, host); }); }
  void copy(Buf& dst, const Buf& src) override { log_.time("copy", [&] { b_->copy(dst, src); }); }
  void synchronize() override { b_->synchronize(); }
  bool holds_table_gradients(const ScatterTable& table) const override { return b_->holds_table_gradients(table); }
  std::unique_ptr<DeviceStep> make_device_step(Buf& w, Buf& g, Buf& m, Buf& v, Buf* shadow,
                                               const std::vector<AdamwTensor>& tensors,
                                               const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                                               const ScatterTable& table) override {
    return TimedStep::wrap(b_->make_device_step(w, g, m, v, shadow, tensors, zero_ranges, table),
                           [this](const char* op, const std::function<void()>& call) { log_.time(op, call); });
  }

#define L2E_OP(name, ret, params, args) \
  ret name params override { return log_.time(#name, op_flops::name args, [&] { return b_->name args; }); }
#include "core/ops.def"

 private:
  std::unique_ptr<Backend> b_;  // destroyed after log_ has waited for its events
  EventLog log_;
};

}  // namespace

std::unique_ptr<Backend> maybe_event_timed(std::unique_ptr<Backend> inner, cudaStream_t s) {
  if (!op_timing_enabled()) return inner;
  return std::make_unique<EventTimedBackend>(std::move(inner), s);
}

}  // namespace cuda
}  // namespace l2e
