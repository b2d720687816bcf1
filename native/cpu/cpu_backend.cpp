// The CPU backend: host memory, fp32 activations, the reference kernels of cpu/kernels.h.
#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/backend.h"
#include "core/lowp.h"
#include "cpu/gemm.h"
#include "cpu/gemm_lowp.h"
#include "cpu/host_pool.h"
#include "cpu/kernels.h"
#include "cpu/cpu_step.h"
#include "cpu/op_timing.h"
#include "cpu/parallel.h"

namespace l2e {
namespace {

float* F(const Buf& b) { return b.f32(); }
const int32_t* I(const Buf& b) { return b.i32(); }

class CpuBackend final : public Backend {
 public:
  // a bad L2E_NUM_THREADS, L2E_CPU_SPIN_US (cpu/parallel.h) or L2E_CPU_STEP (cpu/cpu_step.h) fails
  // the model's creation
  CpuBackend() : step_(cpu_step_enabled()) {
    num_threads();
    spin_us();
  }
  std::string name() const override { return "cpu"; }
  DType act_dtype() const override { return DType::F32; }

  Buf alloc(size_t numel, DType dtype) override {
    Buf b;
    b.numel = numel;
    b.dtype = dtype;
    b.ptr = pool_.alloc(b.bytes());  // large ones mapped, or kept for reuse while training (cpu/host_pool.h)
    return b;
  }
  void free(Buf& b) override {
    pool_.free(b.ptr, b.bytes());
    b.ptr = nullptr;
    b.numel = 0;
  }
  void hold_freed_memory(bool on) override { pool_.hold(on); }
  size_t held_free_bytes() const override { return pool_.held_free_bytes(); }
  void zero(Buf& b) override {
    char* p = static_cast<char*>(b.ptr);
    parallel_for(int64_t(b.bytes()), [&](int64_t s, int64_t e, int) { std::memset(p + s, 0, size_t(e - s)); }, int64_t(1) << 20);
  }

  void upload(Buf& dst, const void* host, size_t numel, DType host_dtype) override {
    if (numel > dst.numel) throw Error("upload: source larger than destination");
    if (numel == 0) return;  // an empty array's data may be null, which memcpy may not be given
    if (host_dtype == dst.dtype) {
      std::memcpy(dst.ptr, host, numel * dtype_size(dst.dtype));
      return;
    }
    if (dst.dtype != DType::F32) throw Error("cpu backend holds only F32 and I32 buffers");
    float* d = dst.f32();
    const uint16_t* h = static_cast<const uint16_t*>(host);
    if (host_dtype == DType::BF16)
      for (size_t i = 0; i < numel; i++) d[i] = bf16_to_f32(h[i]);
    else if (host_dtype == DType::F16)
      for (size_t i = 0; i < numel; i++) d[i] = f16_to_f32(h[i]);
    else
      throw Error(std::string("upload: cannot convert ") + dtype_name(host_dtype) + " to F32");
  }
  void download(const Buf& src, float* host) override {
    if (src.dtype != DType::F32) throw Error("download: cpu buffers are F32");
    if (src.numel == 0) return;
    std::memcpy(host, src.ptr, src.numel * 4);
  }
  void copy(Buf& dst, const Buf& src) override {
    if (dst.numel != src.numel || dst.dtype != src.dtype) throw Error("copy: buffers differ in size or dtype");
    std::memcpy(dst.ptr, src.ptr, src.bytes());
  }

  // ---- forward ----
  void embedding(const Buf& ids, int T, const Buf& table, int H, Buf& out) override {
    cpu::embedding_fwd(I(ids), T, F(table), H, F(out));
  }
  void rmsnorm(Buf& x, const Buf* residual, const Buf& w, int T, int H, float eps, Buf& y, Buf& rstd) override {
    if (residual) add_inplace(x, *residual, size_t(T) * H);  // the reference: the two ops in turn
    cpu::rmsnorm_fwd(F(x), F(w), T, H, eps, F(y), F(rstd));
  }
  void linear(const Buf& x, const Buf& W, const Buf* bias, int T, int K, int N, Buf& y) override {
    cpu::linear_fwd(F(x), F(W), bias ? F(*bias) : nullptr, T, K, N, F(y));
  }
  bool packs_weights() const override { return true; }
  void pack_weights(Buf& W, int N, int K, bool pack) override {
    if (pack)
      pack_weights_inplace(F(W), N, K);
    else
      unpack_weights_inplace(F(W), N, K);
  }
  void linear_packed(const Buf& x, const Buf& W, const Buf* bias, int T, int K, int N, Buf& y) override {
    cpu::linear_packed_fwd(F(x), F(W), bias ? F(*bias) : nullptr, T, K, N, F(y));
  }
  void linear_lowp(const Buf& x, const LowpMatrix& W, const Buf* bias, int T, Buf& y) override {
    lowp::linear_lowp(F(x), T, W, F(y));
    if (!bias) return;
    float* out = F(y);
    const float* b = F(*bias);
    const int64_t N = W.N;
    for (int64_t t = 0; t < T; t++)
      for (int64_t n = 0; n < N; n++) out[t * N + n] += b[n];
  }
  void embedding_lowp(const Buf& ids, int T, const LowpMatrix& table, Buf& out) override {
    const int32_t* id = I(ids);
    float* o = F(out);
    const int64_t H = table.K;
    parallel_for(T, [&](int64_t s, int64_t e, int) {
      for (int64_t t = s; t < e; t++) lowp_unpack_row(table, id[t], o + t * H);
    }, 16);
  }
  void rope(Buf& x, const Buf& positions, int T, int heads, int hd, float theta, float sign) override {
    cpu::rope_fwd(F(x), I(positions), T, heads, hd, theta, sign);
  }
  void attention(const Buf& q, const Buf& k, const Buf& v, const Batch& batch, int nh, int nkv, int hd, Buf& out,
                 Buf& lse) override {
    cpu::attention_fwd(F(q), F(k), F(v), I(batch.cu_seqlens), batch.B, nh, nkv, hd, F(out), F(lse));
  }
  void swiglu(const Buf& gate, const Buf& up, size_t n, Buf& out) override {
    cpu::swiglu_fwd(F(gate), F(up), int64_t(n), F(out));
  }
  void add_inplace(Buf& x, const Buf& y, size_t n) override {
    float* a = F(x);
    const float* b = F(y);
    parallel_for(int64_t(n), [&](int64_t s, int64_t e, int) {
      for (int64_t i = s; i < e; i++) a[i] += b[i];
    }, 16384);
  }
  void pool(const Buf& x, const Batch& batch, int P, Pooling mode, Buf& out) override {
    cpu::pool_fwd(F(x), I(batch.cu_seqlens), batch.B, P, int(mode), F(out));
  }
  void l2norm(const Buf& x, int B, int P, bool normalize, Buf& y, Buf& norm) override {
    cpu::l2norm_fwd(F(x), B, P, normalize, F(y), F(norm));
  }

  // ---- backward ----
  void embedding_backward(const Buf& ids, int T, const Buf& dout, int H, Buf& dtable) override {
    cpu::embedding_bwd(I(ids), T, F(dout), H, F(dtable));
  }
  void rmsnorm_backward(const Buf& x, const Buf& w, const Buf& rstd, const Buf& dy, int T, int H, Buf& dx, Buf& dw,
                        bool accumulate_dx, bool accumulate_dw) override {
    cpu::rmsnorm_bwd(F(x), F(w), F(rstd), F(dy), T, H, F(dx), F(dw), accumulate_dx, accumulate_dw);
  }
  void linear_backward(const Buf& x, const Buf& W, const Buf& dy, int T, int K, int N, Buf* dx, Buf& dW, Buf* dbias,
                       bool accumulate_dx, bool accumulate_dw) override {
    cpu::linear_bwd(F(x), F(W), F(dy), T, K, N, dx ? F(*dx) : nullptr, F(dW), dbias ? F(*dbias) : nullptr,
                    accumulate_dx, accumulate_dw);
  }
  void attention_backward(const Buf& q, const Buf& k, const Buf& v, const Buf& out, const Buf& lse, const Buf& dout,
                          const Batch& batch, int nh, int nkv, int hd, Buf& dq, Buf& dk, Buf& dv) override {
    cpu::attention_bwd(F(q), F(k), F(v), F(out), F(lse), F(dout), I(batch.cu_seqlens), batch.B, nh, nkv, hd, F(dq),
                       F(dk), F(dv));
  }
  void swiglu_backward(const Buf& gate, const Buf& up, const Buf& dout, size_t n, Buf& dgate, Buf& dup) override {
    cpu::swiglu_bwd(F(gate), F(up), F(dout), int64_t(n), F(dgate), F(dup));
  }
  void pool_backward(const Buf& dout, const Batch& batch, int P, Pooling mode, Buf& dx) override {
    cpu::pool_bwd(F(dout), I(batch.cu_seqlens), batch.B, P, int(mode), F(dx));
  }
  void l2norm_backward(const Buf& y, const Buf& norm, const Buf& dy, int B, int P, bool normalize,
                       Buf& dx) override {
    cpu::l2norm_bwd(F(y), F(norm), F(dy), B, P, normalize, F(dx));
  }

  // ---- loss and optimizer ----
  float infonce(const Buf& q, const Buf& p, int B, int G, int P, float temperature, bool in_batch, Buf& scores,
                Buf& dq, Buf& dp) override {
    return cpu::infonce(F(q), F(p), B, G, P, temperature, in_batch, F(scores), F(dq), F(dp));
  }
  double sumsq(const Buf& x, size_t n) override {
    return cpu::sumsq(F(x), int64_t(n), {cpu::Range{0, int64_t(n)}});  // the training step's too (cpu/grad_norm.cpp)
  }
  void scale(Buf& x, size_t n, float s) override {
    float* a = F(x);
    parallel_for(int64_t(n), [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; i++) a[i] *= s;
    }, 65536);
  }
  void adamw(Buf& w, const Buf& g, Buf& m, Buf& v, size_t n, float lr, float beta1, float beta2, float eps,
             float weight_decay, int step, Buf* shadow) override {
    (void)shadow;  // the CPU trains its fp32 weights directly
    cpu::adamw(F(w), F(g), F(m), F(v), int64_t(n), lr, beta1, beta2, eps, weight_decay, step);
  }

  std::unique_ptr<DeviceStep> make_device_step(Buf& w, Buf& g, Buf& m, Buf& v, Buf* shadow,
                                               const std::vector<AdamwTensor>& tensors,
                                               const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                                               const ScatterTable& table) override {
    if (!step_) return nullptr;  // L2E_CPU_STEP=ops: TrainState steps through the ops
    if (shadow) throw Error("cpu training step: the CPU trains F32 weights, without master halves");
    return make_cpu_step(*this, w, g, m, v, tensors, zero_ranges, table);
  }

 private:
  HostPool pool_;
  bool step_;  // train with cpu/cpu_step.cpp's step
};

}  // namespace

// Wrapped in the per-op timer only when the benchmark runner enabled it (cpu/op_timing.h).
std::unique_ptr<Backend> make_cpu_backend() { return maybe_timed(std::make_unique<CpuBackend>()); }

}  // namespace l2e
