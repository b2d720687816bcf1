// The CUDA backend: device memory from a caching pool, bf16 activations and weights, fp32 for norms'
// rstd, attention lse, pooled embeddings, losses, weight gradients and optimizer state. GEMMs go
// through cuBLAS (opened at run time), everything else through our kernels (kernels.h). All work is
// queued on one stream per backend; downloads synchronise it, small uploads (a batch's ids, positions,
// offsets and tiles) go through pinned staging without waiting, larger ones (weights) wait.
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <memory>
#include <vector>

#include "core/backend.h"
#include "core/lowp.h"
#include "core/master_halves.h"
#include "cpu/kernels.h"
#include "cuda/blas.h"
#include "cuda/cublas_loader.h"
#include "cuda/cuda_check.h"
#include "cuda/device_pool.h"
#include "cuda/kernels.h"
#include "cuda/op_events.h"
#include "cuda/train_step.h"

namespace l2e {
namespace {

using namespace cuda;

bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::strcmp(v, "0") != 0;
}

void need(const Buf& b, DType t, const char* op, const char* arg) {
  if (b.dtype != t)
    throw Error(std::string("cuda ") + op + ": " + arg + " must be " + dtype_name(t) + ", got " + dtype_name(b.dtype));
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(const std::string& attention_kernel, const std::string& attention_variant) {
    // settings first: a bad value throws before anything is created (a throwing constructor runs no destructor)
    deterministic_ = env_flag("L2E_DETERMINISTIC");
    if (!attention_kernel.empty()) {
      attention_kernel_ = parse_attention_kernel(attention_kernel, "attention kernel");
    } else if (const char* e = std::getenv("L2E_CUDA_ATTENTION"); e && *e) {
      attention_kernel_ = parse_attention_kernel(e, "L2E_CUDA_ATTENTION");
    }
    attention_variant_ = parse_attention_variant(attention_variant, "attention variant");
    const bool pool_split = DevicePool::split_from_env();
    L2E_CUDA_CHECK(cudaSetDevice(0));
    L2E_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    try {
      pool_ = std::make_unique<DevicePool>(stream_, pool_split);
      blas_ = std::make_unique<Blas>(stream_);  // throws when cuBLAS cannot be opened
    } catch (...) {
      pool_.reset();
      cudaStreamDestroy(stream_);
      throw;
    }
  }
  ~CudaBackend() override {
    if (stream_) cudaStreamSynchronize(stream_);
    for (Staging& st : staging_) {
      cudaEventDestroy(st.done);
      cudaFreeHost(st.host);
    }
    if (scratch_) pool_->free(scratch_);
    blas_.reset();
    pool_.reset();
    if (stream_) cudaStreamDestroy(stream_);
  }

  cudaStream_t stream() const { return stream_; }
  std::string name() const override { return "cuda"; }
  DType act_dtype() const override { return DType::BF16; }
  DType param_dtype() const override { return DType::BF16; }

  // ---- memory ----
  Buf alloc(size_t numel, DType dtype) override {
    Buf b;
    b.numel = numel;
    b.dtype = dtype;
    b.ptr = pool_->alloc(std::max<size_t>(b.bytes(), 256));
    return b;
  }
  void free(Buf& b) override {
    pool_->free(b.ptr);
    b.ptr = nullptr;
    b.numel = 0;
  }
  void zero(Buf& b) override { L2E_CUDA_CHECK(cudaMemsetAsync(b.ptr, 0, b.bytes(), stream_)); }

  void upload(Buf& dst, const void* host, size_t numel, DType host_dtype) override {
    if (numel > dst.numel) throw Error("upload: source larger than destination");
    if (numel == 0) return;  // an empty array's data may be null
    if (host_dtype == dst.dtype) {
      const size_t bytes = numel * dtype_size(dst.dtype);
      if (Staging* st = bytes <= kStagedUpload ? staging(bytes) : nullptr) {
        std::memcpy(st->host, host, bytes);
        L2E_CUDA_CHECK(cudaMemcpyAsync(dst.ptr, st->host, bytes, cudaMemcpyHostToDevice, stream_));
        L2E_CUDA_CHECK(cudaEventRecord(st->done, stream_));  // the block is free again once this completes
        return;
      }
      L2E_CUDA_CHECK(cudaMemcpyAsync(dst.ptr, host, bytes, cudaMemcpyHostToDevice, stream_));
      L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
      return;
    }
    if (dst.dtype != DType::BF16 && dst.dtype != DType::F32)
      throw Error(std::string("upload: cannot convert ") + dtype_name(host_dtype) + " to " + dtype_name(dst.dtype));
    // convert on the host in chunks (bounded staging memory), rounding to nearest even like the CPU
    std::vector<uint32_t> stage(std::min(numel, kHostChunk));
    for (size_t s0 = 0; s0 < numel; s0 += kHostChunk) {
      const size_t n = std::min(kHostChunk, numel - s0);
      for (size_t i = 0; i < n; i++) {
        const float f = host_value(host, host_dtype, s0 + i);
        if (dst.dtype == DType::BF16) reinterpret_cast<uint16_t*>(stage.data())[i] = f32_to_bf16(f);
        else std::memcpy(&stage[i], &f, 4);
      }
      const size_t es = dtype_size(dst.dtype);
      L2E_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(dst.ptr) + s0 * es, stage.data(), n * es,
                                     cudaMemcpyHostToDevice, stream_));
      L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the staging buffer is reused
    }
  }

  void download(const Buf& src, float* host) override {
    if (src.numel == 0) return;
    if (src.dtype == DType::F32) {
      L2E_CUDA_CHECK(cudaMemcpyAsync(host, src.ptr, src.numel * 4, cudaMemcpyDeviceToHost, stream_));
      L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
      return;
    }
    if (src.dtype != DType::BF16 && src.dtype != DType::F16)
      throw Error(std::string("download: cannot convert ") + dtype_name(src.dtype) + " to F32");
    std::vector<uint16_t> stage(src.numel);
    L2E_CUDA_CHECK(cudaMemcpyAsync(stage.data(), src.ptr, src.numel * 2, cudaMemcpyDeviceToHost, stream_));
    L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (src.dtype == DType::BF16)
      for (size_t i = 0; i < src.numel; i++) host[i] = bf16_to_f32(stage[i]);
    else
      for (size_t i = 0; i < src.numel; i++) host[i] = f16_to_f32(stage[i]);
  }
  void copy(Buf& dst, const Buf& src) override {
    if (dst.numel != src.numel) throw Error("copy: buffers differ in size");
    if (dst.dtype == src.dtype) {
      L2E_CUDA_CHECK(cudaMemcpyAsync(dst.ptr, src.ptr, src.bytes(), cudaMemcpyDeviceToDevice, stream_));
      return;
    }
    convert(dst.ptr, dst.dtype, src.ptr, src.dtype, src.numel, stream_);
  }
  void synchronize() override { L2E_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

  // Split and joined on the host in chunks (bounded staging memory), as upload converts.
  void upload_master(Buf& hi, Buf& lo, const void* host, size_t numel, DType host_dtype) override {
    check_halves(hi, lo, numel, "upload_master");
    std::vector<uint16_t> his(std::min(numel, kHostChunk)), los(his.size());
    for (size_t s0 = 0; s0 < numel; s0 += kHostChunk) {
      const size_t n = std::min(kHostChunk, numel - s0);
      for (size_t i = 0; i < n; i++) {
        const float f = host_value(host, host_dtype, s0 + i);
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        his[i] = master_hi(bits);
        los[i] = master_lo(bits);
      }
      L2E_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint16_t*>(hi.ptr) + s0, his.data(), n * 2, cudaMemcpyHostToDevice, stream_));
      L2E_CUDA_CHECK(cudaMemcpyAsync(static_cast<uint16_t*>(lo.ptr) + s0, los.data(), n * 2, cudaMemcpyHostToDevice, stream_));
      L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the staging buffers are reused
    }
  }
  void download_master(const Buf& hi, const Buf& lo, float* host) override {
    check_halves(hi, lo, hi.numel, "download_master");
    const size_t numel = hi.numel;
    std::vector<uint16_t> his(std::min(numel, kHostChunk)), los(his.size());
    for (size_t s0 = 0; s0 < numel; s0 += kHostChunk) {
      const size_t n = std::min(kHostChunk, numel - s0);
      L2E_CUDA_CHECK(cudaMemcpyAsync(his.data(), static_cast<const uint16_t*>(hi.ptr) + s0, n * 2, cudaMemcpyDeviceToHost, stream_));
      L2E_CUDA_CHECK(cudaMemcpyAsync(los.data(), static_cast<const uint16_t*>(lo.ptr) + s0, n * 2, cudaMemcpyDeviceToHost, stream_));
      L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
      for (size_t i = 0; i < n; i++) {
        const uint32_t bits = master_bits(his[i], los[i]);
        std::memcpy(host + s0 + i, &bits, 4);
      }
    }
  }

  // ---- forward ----
  void embedding(const Buf& ids, int T, const Buf& table, int H, Buf& out) override {
    need(table, DType::BF16, "embedding", "table");
    need(out, DType::BF16, "embedding", "out");
    embedding_fwd(ids.i32(), T, table.ptr, H, out.ptr, stream_);
  }
  void rmsnorm(Buf& x, const Buf* residual, const Buf& w, int T, int H, float eps, Buf& y, Buf& rstd) override {
    for (const Buf* b : std::initializer_list<const Buf*>{&x, &w, &y}) need(*b, DType::BF16, "rmsnorm", "x, w and y");
    if (residual) need(*residual, DType::BF16, "rmsnorm", "residual");
    need(rstd, DType::F32, "rmsnorm", "rstd");
    rmsnorm_fwd(x.ptr, residual ? residual->ptr : nullptr, w.ptr, T, H, eps, y.ptr, rstd.f32(), stream_);
  }
  void linear(const Buf& x, const Buf& W, const Buf* bias, int T, int K, int N, Buf& y) override {
    need(x, DType::BF16, "linear", "x");
    need(W, DType::BF16, "linear", "W");
    if (T <= 0) return;
    float beta = 0.0f;
    if (bias) {  // y = b, then y = x W^T + 1 y: one rounding of (product + bias)
      need(*bias, DType::BF16, "linear", "bias");
      need(y, DType::BF16, "linear", "y (with a bias)");
      fill_rows_bf16(y.ptr, bias->ptr, T, N, stream_);
      beta = 1.0f;
    }
    blas_->linear(x.ptr, W.ptr, T, K, N, y.ptr, y.dtype, beta);
  }
  // bf16 / int8 weights are the CPU's (core/lowp.h); a CUDA model runs its weights in bf16 already
  void linear_lowp(const Buf&, const LowpMatrix&, const Buf*, int, Buf&) override { throw Error(lowp_cpu_only("cuda")); }
  void embedding_lowp(const Buf&, int, const LowpMatrix&, Buf&) override { throw Error(lowp_cpu_only("cuda")); }
  void rope(Buf& x, const Buf& positions, int T, int heads, int hd, float theta, float sign) override {
    need(x, DType::BF16, "rope", "x");
    std::vector<float> inv(static_cast<size_t>(hd / 2));
    cpu::rope_inv_freq(hd, theta, inv.data());  // the CPU's float32 inverse frequencies
    cuda::rope(x.ptr, positions.i32(), T, heads, hd, inv.data(), sign, stream_);
  }
  void attention(const Buf& q, const Buf& k, const Buf& v, const Batch& batch, int nh, int nkv, int hd, Buf& out,
                 Buf& lse) override {
    for (const Buf* b : std::initializer_list<const Buf*>{&q, &k, &v, &out}) need(*b, DType::BF16, "attention", "q, k, v and out");
    need(lse, DType::F32, "attention", "lse");
    attention_fwd(q.ptr, k.ptr, v.ptr, batch.cu_seqlens.i32(), batch.B, batch.T, nh, nkv, hd, batch.tiles.i32(),
                  batch.num_tiles, out.ptr, lse.f32(), attention_kernel_, attention_variant_, stream_);
  }
  void swiglu(const Buf& gate, const Buf& up, size_t n, Buf& out) override {
    for (const Buf* b : std::initializer_list<const Buf*>{&gate, &up, &out}) need(*b, DType::BF16, "swiglu", "gate, up and out");
    swiglu_fwd(gate.ptr, up.ptr, n, out.ptr, stream_);
  }
  void add_inplace(Buf& x, const Buf& y, size_t n) override {
    if (x.dtype != y.dtype) throw Error("cuda add_inplace: x and y differ in dtype");
    cuda::add_inplace(x.ptr, y.ptr, x.dtype, n, stream_);
  }
  void pool(const Buf& x, const Batch& batch, int P, Pooling mode, Buf& out) override {
    pool_fwd(x.ptr, x.dtype, batch.cu_seqlens.i32(), batch.B, P, int(mode), out.ptr, out.dtype, stream_);
  }
  void l2norm(const Buf& x, int B, int P, bool normalize, Buf& y, Buf& norm) override {
    need(norm, DType::F32, "l2norm", "norm");
    l2norm_fwd(x.ptr, x.dtype, B, P, normalize, y.ptr, y.dtype, norm.f32(), stream_);
  }

  // ---- backward ----
  void embedding_backward(const Buf& ids, int T, const Buf& dout, int H, Buf& dtable) override {
    need(dout, DType::BF16, "embedding_backward", "dout");
    need(dtable, DType::F32, "embedding_backward", "dtable");
    embedding_bwd(ids.i32(), T, dout.ptr, H, dtable.f32(), deterministic_, stream_);
  }
  void rmsnorm_backward(const Buf& x, const Buf& w, const Buf& rstd, const Buf& dy, int T, int H, Buf& dx, Buf& dw,
                        bool accumulate_dx, bool accumulate_dw) override {
    for (const Buf* b : std::initializer_list<const Buf*>{&x, &w, &dy, &dx}) need(*b, DType::BF16, "rmsnorm_backward", "x, w, dy and dx");
    need(dw, DType::F32, "rmsnorm_backward", "dw");
    // dw first: dx may overwrite dy in place
    rmsnorm_weight_grad(x.ptr, dy.ptr, rstd.f32(), T, H, dw.f32(), accumulate_dw,
                        scratch_f32(column_sums_workspace(T, H)), stream_);
    rmsnorm_bwd_dx(x.ptr, w.ptr, rstd.f32(), dy.ptr, T, H, dx.ptr, accumulate_dx, stream_);
  }
  void linear_backward(const Buf& x, const Buf& W, const Buf& dy, int T, int K, int N, Buf* dx, Buf& dW, Buf* dbias,
                       bool accumulate_dx, bool accumulate_dw) override {
    for (const Buf* b : std::initializer_list<const Buf*>{&x, &W, &dy}) need(*b, DType::BF16, "linear_backward", "x, W and dy");
    if (dbias) need(*dbias, DType::F32, "linear_backward", "dbias");
    if (T <= 0) {  // sums over no tokens: zeros when written
      if (!accumulate_dw) zero(dW);
      if (!accumulate_dw && dbias) zero(*dbias);
      return;
    }
    if (dx) blas_->linear_dx(dy.ptr, W.ptr, T, K, N, dx->ptr, dx->dtype, accumulate_dx ? 1.0f : 0.0f);
    blas_->linear_dw(dy.ptr, x.ptr, T, K, N, dW.ptr, dW.dtype, accumulate_dw ? 1.0f : 0.0f);
    if (dbias) bias_grad(dy.ptr, T, N, dbias->f32(), accumulate_dw, scratch_f32(column_sums_workspace(T, N)), stream_);
  }
  void attention_backward(const Buf& q, const Buf& k, const Buf& v, const Buf& out, const Buf& lse, const Buf& dout,
                          const Batch& batch, int nh, int nkv, int hd, Buf& dq, Buf& dk, Buf& dv) override {
    for (const Buf* b : std::initializer_list<const Buf*>{&q, &k, &v, &out, &dout, &dq, &dk, &dv})
      need(*b, DType::BF16, "attention_backward", "q, k, v, out, dout, dq, dk and dv");
    need(lse, DType::F32, "attention_backward", "lse");
    float* D = scratch_f32(attention_bwd_workspace(batch.T, nh, hd));
    attention_bwd(q.ptr, k.ptr, v.ptr, out.ptr, lse.f32(), dout.ptr, batch.cu_seqlens.i32(), batch.B, batch.T, nh, nkv,
                  hd, batch.tiles.i32(), batch.num_tiles, dq.ptr, dk.ptr, dv.ptr, D, attention_kernel_, attention_variant_,
                  stream_);
  }
  void swiglu_backward(const Buf& gate, const Buf& up, const Buf& dout, size_t n, Buf& dgate, Buf& dup) override {
    for (const Buf* b : std::initializer_list<const Buf*>{&gate, &up, &dout, &dgate, &dup}) need(*b, DType::BF16, "swiglu_backward", "all buffers");
    swiglu_bwd(gate.ptr, up.ptr, dout.ptr, n, dgate.ptr, dup.ptr, stream_);
  }
  void pool_backward(const Buf& dout, const Batch& batch, int P, Pooling mode, Buf& dx) override {
    pool_bwd(dout.ptr, dout.dtype, batch.cu_seqlens.i32(), batch.B, batch.T, P, int(mode), dx.ptr, dx.dtype, stream_);
  }
  void l2norm_backward(const Buf& y, const Buf& norm, const Buf& dy, int B, int P, bool normalize, Buf& dx) override {
    need(norm, DType::F32, "l2norm_backward", "norm");
    l2norm_bwd(y.ptr, y.dtype, norm.f32(), dy.ptr, dy.dtype, B, P, normalize, dx.ptr, dx.dtype, stream_);
  }

  // ---- loss and optimizer ----
  float infonce(const Buf& q, const Buf& p, int B, int G, int P, float temperature, bool in_batch, Buf& scores,
                Buf& dq, Buf& dp) override {
    for (const Buf* b : std::initializer_list<const Buf*>{&q, &p, &scores, &dq, &dp}) need(*b, DType::F32, "infonce", "all buffers");
    if (B <= 0) return 0.0f;
    void* ws = scratch_f32(infonce_workspace(B, G));
    const double* row_loss = cuda::infonce(q.f32(), p.f32(), B, G, P, temperature, in_batch, scores.f32(), dq.f32(),
                                           dp.f32(), ws, stream_);
    std::vector<double> host(static_cast<size_t>(B));
    L2E_CUDA_CHECK(cudaMemcpyAsync(host.data(), row_loss, host.size() * sizeof(double), cudaMemcpyDeviceToHost, stream_));
    L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
    double total = 0;
    for (double v : host) total += v;
    return float(total / B);
  }
  double sumsq(const Buf& x, size_t n) override {
    need(x, DType::F32, "sumsq", "x");
    if (n == 0) return 0.0;
    const int blocks = sumsq_blocks(n);
    double* partials = reinterpret_cast<double*>(scratch_f32(size_t(blocks) * sizeof(double)));
    sumsq_partials(x.f32(), n, partials, stream_);
    std::vector<double> host(static_cast<size_t>(blocks));
    L2E_CUDA_CHECK(cudaMemcpyAsync(host.data(), partials, host.size() * sizeof(double), cudaMemcpyDeviceToHost, stream_));
    L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
    double total = 0;
    for (double v : host) total += v;
    return total;
  }
  void scale(Buf& x, size_t n, float s) override {
    need(x, DType::F32, "scale", "x");
    scale_f32(x.f32(), n, s, stream_);
  }
  void adamw(Buf& w, const Buf& g, Buf& m, Buf& v, size_t n, float lr_f, float beta1_f, float beta2_f, float eps_f,
             float weight_decay_f, int step, Buf* shadow) override {
    for (const Buf* b : std::initializer_list<const Buf*>{&g, &m, &v}) need(*b, DType::F32, "adamw", "g, m and v");
    if (shadow) {
      need(w, DType::U16, "adamw", "w (the master's low halves, with a shadow)");
      need(*shadow, DType::BF16, "adamw", "shadow");
    } else {
      need(w, DType::F32, "adamw", "w");
    }
    const AdamwScalars a = adamw_scalars(lr_f, beta1_f, beta2_f, eps_f, weight_decay_f, step);  // as the CPU
    cuda::adamw(w.ptr, g.f32(), m.f32(), v.f32(), n, a, shadow ? shadow->ptr : nullptr, stream_);
  }

  bool holds_table_gradients(const ScatterTable& table) const override { return cuda::holds_table_gradients(table); }
  std::unique_ptr<DeviceStep> make_device_step(Buf& w, Buf& g, Buf& m, Buf& v, Buf* shadow,
                                               const std::vector<AdamwTensor>& tensors,
                                               const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                                               const ScatterTable& table) override {
    return cuda::make_device_step(stream_, *pool_, w, g, m, v, shadow, tensors, zero_ranges, table);
  }

 private:
  static float host_value(const void* host, DType t, size_t i) {
    switch (t) {
      case DType::F32: return static_cast<const float*>(host)[i];
      case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(host)[i]);
      case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(host)[i]);
      default: throw Error(std::string("upload: cannot convert ") + dtype_name(t));
    }
  }

  // Values a host-side conversion stages at a time (upload, upload_master, download_master).
  static constexpr size_t kHostChunk = size_t(1) << 22;

  static void check_halves(const Buf& hi, const Buf& lo, size_t numel, const char* what) {
    need(hi, DType::BF16, what, "hi");
    need(lo, DType::U16, what, "lo");
    if (hi.numel != lo.numel || numel > hi.numel) throw Error(std::string(what) + ": the halves differ in size from the data");
  }

  // Pinned staging for uploads of up to kStagedUpload bytes: a block whose last copy has completed
  // (its event, queried without waiting), else a new one; at most kMaxStaging blocks, then nullptr
  // (the caller copies and waits).
  static constexpr size_t kStagedUpload = size_t(1) << 20, kStagingBlock = size_t(64) << 10;
  static constexpr size_t kMaxStaging = 64;
  struct Staging {
    void* host;
    size_t bytes;
    cudaEvent_t done;
  };
  Staging* staging(size_t bytes) {
    for (Staging& st : staging_)
      if (st.bytes >= bytes && cudaEventQuery(st.done) == cudaSuccess) return &st;
    cudaGetLastError();  // cudaErrorNotReady from the queries is not an error
    if (staging_.size() >= kMaxStaging) return nullptr;
    Staging st{nullptr, std::max(bytes, kStagingBlock), nullptr};
    L2E_CUDA_CHECK(cudaHostAlloc(&st.host, st.bytes, cudaHostAllocDefault));
    const cudaError_t e = cudaEventCreateWithFlags(&st.done, cudaEventDisableTiming);
    if (e != cudaSuccess) {
      cudaFreeHost(st.host);
      L2E_CUDA_CHECK(e);
    }
    staging_.push_back(st);
    return &staging_.back();
  }

  // A workspace of at least `bytes`, valid until the next call (all work is on one stream, in order).
  float* scratch_f32(size_t bytes) {
    if (bytes > scratch_bytes_) {
      if (scratch_) pool_->free(scratch_);
      scratch_ = nullptr;
      scratch_ = pool_->alloc(bytes);
      scratch_bytes_ = bytes;
    }
    return static_cast<float*>(scratch_);
  }

  cudaStream_t stream_ = nullptr;
  std::unique_ptr<DevicePool> pool_;
  std::unique_ptr<Blas> blas_;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  std::deque<Staging> staging_;  // a deque: pointers to blocks stay valid as it grows
  // L2E_DETERMINISTIC: the embedding backward without atomics. The attention backward still sums dQ
  // over key blocks with float atomics (attention_bwd.cu, attention_bwd_sm90.cu), so a step with a
  // sequence longer than one key block (64 tokens) may differ in its last bits from run to run.
  bool deterministic_ = false;
  AttentionKernel attention_kernel_ = AttentionKernel::Auto;  // L2E_CUDA_ATTENTION, or the test hooks' choice
  AttentionVariant attention_variant_;                        // the bench's and test hooks' choice
};

}  // namespace

CudaStatus cuda_status() {
  CudaStatus s;
  s.compiled = true;
#ifdef L2E_CUDA_EMULATION
  s.emulated = true;
#endif
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    std::string why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device found";
#ifndef L2E_CUDA_EMULATION
    // without a driver the runtime says "CUDA driver version is insufficient", which sends a user to
    // upgrade a driver that is not there: say what is missing instead
    if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice) {
      void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
      if (driver) dlclose(driver);
      else why = "no NVIDIA driver found (libcuda.so.1 could not be loaded); use device 'cpu'";
    }
#endif
    s.reason = "no CUDA GPU is usable: " + why;
    cudaGetLastError();
    return s;
  }
  s.devices = n;
  cudaDeviceProp prop{};
  cudaError_t d = cudaGetDeviceProperties(&prop, 0);
  if (d == cudaSuccess) d = cudaSetDevice(0);
  if (d == cudaSuccess) d = cudaMemGetInfo(&s.free_bytes, &s.total_bytes);
  if (d != cudaSuccess) {
    s.reason = cuda::context_lost(d)
                   ? std::string("a CUDA kernel failed earlier in this process (") + cudaGetErrorString(d) +
                         "): restart it to use the GPU"
                   : std::string("no CUDA GPU is usable: ") + cudaGetErrorString(d);
    cudaGetLastError();
    return s;
  }
  try {
    cuda::cublas();  // opens libcublas once
  } catch (const std::exception& ex) {
    s.reason = ex.what();
    return s;
  }
  s.name = prop.name;
  s.compute_capability = std::to_string(prop.major) + "." + std::to_string(prop.minor);
  s.usable = true;
  return s;
}

std::vector<std::string> cuda_attention_variants() { return attention_variants(); }

std::unique_ptr<Backend> make_cuda_backend(const std::string& attention_kernel, const std::string& attention_variant) {
  const CudaStatus s = cuda_status();
  if (!s.usable) throw Error("device 'cuda' requested but " + s.reason);
  auto be = std::make_unique<CudaBackend>(attention_kernel, attention_variant);
  const cudaStream_t stream = be->stream();
  return maybe_event_timed(std::move(be), stream);  // per-op CUDA event timing when the bench asks (cpu/op_timing.h)
}

}  // namespace l2e
