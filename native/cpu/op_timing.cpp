// The timing decorator behind op_timing.h: forwards every op-table call to the wrapped backend and
// adds its duration to a per-op slot. Slots are fixed (one per op of core/ops.def, plus the memory
// ops, and the optimizer step a device backend runs as one) and atomic, so a timed backend costs two clock reads per op and no allocation.
#include "cpu/op_timing.h"

#include <atomic>
#include <chrono>

#include "core/op_flops.h"
#include "core/timed_step.h"

namespace l2e {
namespace {

// One slot per op of core/ops.def, then the memory ops.
enum Op : int {
#define L2E_OP(name, ret, params, args) k_##name,
#include "core/ops.def"
  kCopy, kZero, kUpload, kDownload, kOptimizerStep, kNumOps
};
const char* const kOpNames[kNumOps] = {
#define L2E_OP(name, ret, params, args) #name,
#include "core/ops.def"
    "copy", "zero", "upload", "download", "optimizer_step"};

std::atomic<bool> g_enabled{false};
std::atomic<int64_t> g_ns[kNumOps];
std::atomic<int64_t> g_calls[kNumOps];
std::atomic<int64_t> g_flops[kNumOps];  // whole FLOPs: exact up to 2^63, past any run's total

void add(int op, int64_t ns, double flops) {
  g_ns[op].fetch_add(ns, std::memory_order_relaxed);
  g_calls[op].fetch_add(1, std::memory_order_relaxed);
  g_flops[op].fetch_add(int64_t(flops), std::memory_order_relaxed);
}

// Adds the lifetime of this object, and `flops`, to op's slot.
class Scope {
 public:
  explicit Scope(Op op, double flops = 0) : op_(op), flops_(flops), t0_(std::chrono::steady_clock::now()) {}
  ~Scope() {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_);
    add(op_, ns.count(), flops_);
  }

 private:
  Op op_;
  double flops_;
  std::chrono::steady_clock::time_point t0_;
};

class TimedBackend final : public Backend {
 public:
  explicit TimedBackend(std::unique_ptr<Backend> inner) : b_(std::move(inner)) {}
  std::string name() const override { return b_->name(); }
  DType act_dtype() const override { return b_->act_dtype(); }

  Buf alloc(size_t numel, DType dtype) override { return b_->alloc(numel, dtype); }
  void free(Buf& b) override { b_->free(b); }
  void zero(Buf& b) override { Scope s(kZero); b_->zero(b); }
  void upload(Buf& dst, const void* host, size_t numel, DType host_dtype) override {
    Scope s(kUpload);
    b_->upload(dst, host, numel, host_dtype);
  }
  void download(const Buf& src, float* host) override { Scope s(kDownload); b_->download(src, host); }
  void copy(Buf& dst, const Buf& src) override { Scope s(kCopy); b_->copy(dst, src); }
  void synchronize() override { b_->synchronize(); }
  void hold_freed_memory(bool on) override { b_->hold_freed_memory(on); }
  size_t held_free_bytes() const override { return b_->held_free_bytes(); }
  bool holds_table_gradients(const ScatterTable& table) const override { return b_->holds_table_gradients(table); }
  std::unique_ptr<DeviceStep> make_device_step(Buf& w, Buf& g, Buf& m, Buf& v, Buf* shadow,
                                               const std::vector<AdamwTensor>& tensors,
                                               const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                                               const ScatterTable& table) override {
    return TimedStep::wrap(b_->make_device_step(w, g, m, v, shadow, tensors, zero_ranges, table), [](const char* op, const std::function<void()>& call) {
      const auto t0 = std::chrono::steady_clock::now();
      call();
      add_op_time(op, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 0);
    });
  }

  // every op: time the call into the wrapped backend
#define L2E_OP(name, ret, params, args)         \
  ret name params override {                    \
    Scope op_timer(k_##name, op_flops::name args); \
    return b_->name args;                       \
  }
#include "core/ops.def"
  bool packs_weights() const override { return b_->packs_weights(); }
  void pack_weights(Buf& W, int N, int K, bool pack) override { b_->pack_weights(W, N, K, pack); }
  void linear_packed(const Buf& x, const Buf& W, const Buf* bias, int T, int K, int N, Buf& y) override {
    Scope op_timer(k_linear, op_flops::linear(x, W, bias, T, K, N, y));  // the same op as linear, its weights laid out for the GEMM
    b_->linear_packed(x, W, bias, T, K, N, y);
  }

 private:
  std::unique_ptr<Backend> b_;
};

}  // namespace

void set_op_timing(bool enabled) { g_enabled.store(enabled); }
bool op_timing_enabled() { return g_enabled.load(); }

std::vector<OpTiming> op_timings() {
  std::vector<OpTiming> out;
  for (int i = 0; i < kNumOps; i++) {
    const int64_t calls = g_calls[i].load(std::memory_order_relaxed);
    if (calls > 0)
      out.push_back({kOpNames[i], calls, double(g_ns[i].load(std::memory_order_relaxed)) * 1e-9,
                     double(g_flops[i].load(std::memory_order_relaxed))});
  }
  return out;
}

bool add_op_time(const std::string& op, double seconds, double flops) {
  for (int i = 0; i < kNumOps; i++)
    if (op == kOpNames[i]) {
      add(i, int64_t(seconds * 1e9), flops);
      return true;
    }
  return false;
}

void reset_op_timings() {
  for (int i = 0; i < kNumOps; i++) {
    g_ns[i].store(0);
    g_calls[i].store(0);
    g_flops[i].store(0);
  }
}

std::unique_ptr<Backend> maybe_timed(std::unique_ptr<Backend> inner) {
  if (!op_timing_enabled()) return inner;
  return std::make_unique<TimedBackend>(std::move(inner));
}

}  // namespace l2e
