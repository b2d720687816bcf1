// The timing decorator behind op_timing.h: forwards every op-table call to the wrapped backend and
// adds its duration to a per-op slot. Slots are fixed (one per op) and atomic, so a timed backend
// costs two clock reads per op and no allocation.
#include "cpu/op_timing.h"

#include <atomic>
#include <chrono>

namespace l2e {
namespace {

enum Op : int {
  kEmbedding, kRmsnorm, kLinear, kRope, kAttention, kSwiglu, kAddInplace, kPool, kL2norm,
  kEmbeddingBwd, kRmsnormBwd, kLinearBwd, kAttentionBwd, kSwigluBwd, kPoolBwd, kL2normBwd,
  kInfonce, kSumsq, kScale, kAdamw, kCopy, kZero, kUpload, kDownload, kNumOps
};
const char* const kOpNames[kNumOps] = {
    "embedding", "rmsnorm", "linear", "rope", "attention", "swiglu", "add_inplace", "pool", "l2norm",
    "embedding_backward", "rmsnorm_backward", "linear_backward", "attention_backward", "swiglu_backward",
    "pool_backward", "l2norm_backward", "infonce", "sumsq", "scale", "adamw", "copy", "zero", "upload",
    "download"};

std::atomic<bool> g_enabled{false};
std::atomic<int64_t> g_ns[kNumOps];
std::atomic<int64_t> g_calls[kNumOps];

// Adds the lifetime of this object to op's slot.
class Scope {
 public:
  explicit Scope(Op op) : op_(op), t0_(std::chrono::steady_clock::now()) {}
  ~Scope() {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_);
    g_ns[op_].fetch_add(ns.count(), std::memory_order_relaxed);
    g_calls[op_].fetch_add(1, std::memory_order_relaxed);
  }

 private:
  Op op_;
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
  void download_i32(const Buf& src, int32_t* host) override { Scope s(kDownload); b_->download_i32(src, host); }
  void copy(Buf& dst, const Buf& src) override { Scope s(kCopy); b_->copy(dst, src); }
  void synchronize() override { b_->synchronize(); }

  void embedding(const Buf& ids, int T, const Buf& table, int H, Buf& out) override {
    Scope s(kEmbedding);
    b_->embedding(ids, T, table, H, out);
  }
  void rmsnorm(const Buf& x, const Buf& w, int T, int H, float eps, Buf& y, Buf& rstd) override {
    Scope s(kRmsnorm);
    b_->rmsnorm(x, w, T, H, eps, y, rstd);
  }
  void linear_lowp(const Buf& x, const LowpMatrix& W, const Buf* bias, int T, Buf& y) override {
    Scope s(kLinear);
    b_->linear_lowp(x, W, bias, T, y);
  }
  void embedding_lowp(const Buf& ids, int T, const LowpMatrix& table, Buf& out) override {
    Scope s(kEmbedding);
    b_->embedding_lowp(ids, T, table, out);
  }
  void linear(const Buf& x, const Buf& W, const Buf* bias, int T, int K, int N, Buf& y, bool accumulate) override {
    Scope s(kLinear);
    b_->linear(x, W, bias, T, K, N, y, accumulate);
  }
  void rope(Buf& x, const Buf& positions, int T, int heads, int hd, float theta, float sign) override {
    Scope s(kRope);
    b_->rope(x, positions, T, heads, hd, theta, sign);
  }
  void attention(const Buf& q, const Buf& k, const Buf& v, const Batch& batch, int nh, int nkv, int hd, Buf& out,
                 Buf& lse) override {
    Scope s(kAttention);
    b_->attention(q, k, v, batch, nh, nkv, hd, out, lse);
  }
  void swiglu(const Buf& gate, const Buf& up, size_t n, Buf& out) override {
    Scope s(kSwiglu);
    b_->swiglu(gate, up, n, out);
  }
  void add_inplace(Buf& x, const Buf& y, size_t n) override {
    Scope s(kAddInplace);
    b_->add_inplace(x, y, n);
  }
  void pool(const Buf& x, const Batch& batch, int P, Pooling mode, Buf& out) override {
    Scope s(kPool);
    b_->pool(x, batch, P, mode, out);
  }
  void l2norm(const Buf& x, int B, int P, bool normalize, Buf& y, Buf& norm) override {
    Scope s(kL2norm);
    b_->l2norm(x, B, P, normalize, y, norm);
  }

  void embedding_backward(const Buf& ids, int T, const Buf& dout, int H, Buf& dtable) override {
    Scope s(kEmbeddingBwd);
    b_->embedding_backward(ids, T, dout, H, dtable);
  }
  void rmsnorm_backward(const Buf& x, const Buf& w, const Buf& rstd, const Buf& dy, int T, int H, Buf& dx, Buf& dw,
                        bool accumulate_dx) override {
    Scope s(kRmsnormBwd);
    b_->rmsnorm_backward(x, w, rstd, dy, T, H, dx, dw, accumulate_dx);
  }
  void linear_backward(const Buf& x, const Buf& W, const Buf& dy, int T, int K, int N, Buf* dx, Buf& dW, Buf* dbias,
                       bool accumulate_dx) override {
    Scope s(kLinearBwd);
    b_->linear_backward(x, W, dy, T, K, N, dx, dW, dbias, accumulate_dx);
  }
  void attention_backward(const Buf& q, const Buf& k, const Buf& v, const Buf& out, const Buf& lse, const Buf& dout,
                          const Batch& batch, int nh, int nkv, int hd, Buf& dq, Buf& dk, Buf& dv) override {
    Scope s(kAttentionBwd);
    b_->attention_backward(q, k, v, out, lse, dout, batch, nh, nkv, hd, dq, dk, dv);
  }
  void swiglu_backward(const Buf& gate, const Buf& up, const Buf& dout, size_t n, Buf& dgate, Buf& dup) override {
    Scope s(kSwigluBwd);
    b_->swiglu_backward(gate, up, dout, n, dgate, dup);
  }
  void pool_backward(const Buf& dout, const Batch& batch, int P, Pooling mode, Buf& dx) override {
    Scope s(kPoolBwd);
    b_->pool_backward(dout, batch, P, mode, dx);
  }
  void l2norm_backward(const Buf& y, const Buf& norm, const Buf& dy, int B, int P, bool normalize,
                       Buf& dx) override {
    Scope s(kL2normBwd);
    b_->l2norm_backward(y, norm, dy, B, P, normalize, dx);
  }

  float infonce(const Buf& q, const Buf& p, int B, int G, int P, float temperature, bool in_batch, Buf& scores,
                Buf& dq, Buf& dp) override {
    Scope s(kInfonce);
    return b_->infonce(q, p, B, G, P, temperature, in_batch, scores, dq, dp);
  }
  double sumsq(const Buf& x, size_t n) override {
    Scope s(kSumsq);
    return b_->sumsq(x, n);
  }
  void scale(Buf& x, size_t n, float sc) override {
    Scope s(kScale);
    b_->scale(x, n, sc);
  }
  void adamw(Buf& w, const Buf& g, Buf& m, Buf& v, size_t n, float lr, float beta1, float beta2, float eps,
             float weight_decay, int step, Buf* shadow) override {
    Scope s(kAdamw);
    b_->adamw(w, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, shadow);
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
    if (calls > 0) out.push_back({kOpNames[i], calls, double(g_ns[i].load(std::memory_order_relaxed)) * 1e-9});
  }
  return out;
}

void reset_op_timings() {
  for (int i = 0; i < kNumOps; i++) {
    g_ns[i].store(0);
    g_calls[i].store(0);
  }
}

std::unique_ptr<Backend> maybe_timed(std::unique_ptr<Backend> inner) {
  if (!op_timing_enabled()) return inner;
  return std::make_unique<TimedBackend>(std::move(inner));
}

}  // namespace l2e
