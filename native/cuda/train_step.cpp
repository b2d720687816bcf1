// The CUDA training step (core/device_step.h): everything between the loss and the next forward
// stays on the stream, and one small read-back ends the step.
//   infonce: the loss kernels, then loss_accumulate adds the mean to StepState::loss (device);
//   step:    sumsq partials -> step_decide (norm, skip, clip factor) -> adamw_multi over the
//            descriptor table built here once -> the gradients' zero ranges cleared (the embedding
//            table: the next backward writes the others, core/model_backward.cpp) -> StepState
//            copied to pinned host memory -> the one cudaStreamSynchronize.
// No CUDA graph: a packed batch changes T, B and the attention tile count every step (and cuBLAS its
// algorithms with them), so the forward and backward would need a graph per shape; the fixed-shape
// tail above is five operations, microseconds of launches in a step of milliseconds.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "core/device_step.h"
#include "cuda/cuda_check.h"
#include "cuda/device_pool.h"
#include "cuda/kernels.h"
#include "cuda/train_step.h"

namespace l2e {
namespace cuda {
namespace {

class CudaDeviceStep final : public DeviceStep {
 public:
  CudaDeviceStep(cudaStream_t s, DevicePool& pool, Buf& w, Buf& g, Buf& m, Buf& v, Buf* shadow,
                 const std::vector<AdamwTensor>& tensors, const std::vector<std::pair<size_t, size_t>>& zero_ranges)
      : stream_(s), pool_(pool), g_(g), zero_ranges_(zero_ranges) {
    std::vector<AdamwTensorDesc> descs;
    std::vector<AdamwBlockWork> work;
    for (const AdamwTensor& t : tensors) {
      if (t.numel == 0) continue;
      AdamwTensorDesc d;
      d.w = w.f32() + t.offset;
      d.g = g.f32() + t.offset;
      d.m = m.f32() + t.offset;
      d.v = v.f32() + t.offset;
      d.shadow = shadow ? static_cast<char*>(shadow->ptr) + t.offset * dtype_size(shadow->dtype) : nullptr;
      d.n = t.numel;
      d.decay = t.decay ? 1 : 0;
      for (size_t start = 0; start < t.numel; start += kAdamwBlockElems)
        work.push_back(AdamwBlockWork{uint32_t(descs.size()), start});
      descs.push_back(d);
    }
    blocks_ = unsigned(work.size());
    partial_count_ = sumsq_blocks(g.numel);
    try {
      state_ = static_cast<StepState*>(pool_.alloc(sizeof(StepState)));
      partials_ = static_cast<double*>(pool_.alloc(std::max<size_t>(size_t(partial_count_), 1) * sizeof(double)));
      descs_ = static_cast<AdamwTensorDesc*>(pool_.alloc(std::max<size_t>(descs.size(), 1) * sizeof(AdamwTensorDesc)));
      work_ = static_cast<AdamwBlockWork*>(pool_.alloc(std::max<size_t>(work.size(), 1) * sizeof(AdamwBlockWork)));
      L2E_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&host_), sizeof(StepState), cudaHostAllocDefault));
      L2E_CUDA_CHECK(cudaMemsetAsync(state_, 0, sizeof(StepState), stream_));
      L2E_CUDA_CHECK(cudaMemcpyAsync(descs_, descs.data(), descs.size() * sizeof(AdamwTensorDesc),
                                     cudaMemcpyHostToDevice, stream_));
      L2E_CUDA_CHECK(cudaMemcpyAsync(work_, work.data(), work.size() * sizeof(AdamwBlockWork), cudaMemcpyHostToDevice,
                                     stream_));
      L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));  // once, at creation: the tables are read from the host vectors
    } catch (...) {
      release();
      throw;
    }
  }
  ~CudaDeviceStep() override { release(); }

  void infonce(const Buf& q, const Buf& p, int B, int G, int P, float temperature, bool in_batch, Buf& scores,
               Buf& dq, Buf& dp) override {
    if (B <= 0) return;
    const size_t bytes = infonce_workspace(B, G);
    if (bytes > workspace_bytes_) {
      if (workspace_) pool_.free(workspace_);
      workspace_ = nullptr;
      workspace_ = pool_.alloc(bytes);
      workspace_bytes_ = bytes;
    }
    const double* row_loss = cuda::infonce(q.f32(), p.f32(), B, G, P, temperature, in_batch, scores.f32(), dq.f32(),
                                           dp.f32(), workspace_, stream_);
    loss_accumulate(row_loss, B, state_, stream_);
  }

  double take_loss() override {
    read_back();
    return host_->loss;
  }

  StepOutcome step(const AdamwScalars& decayed, const AdamwScalars& plain, float max_grad_norm) override {
    if (g_.numel > 0) sumsq_partials(g_.f32(), g_.numel, partials_, stream_);
    step_decide(partials_, g_.numel > 0 ? partial_count_ : 0, max_grad_norm, state_, stream_);
    adamw_multi(descs_, work_, blocks_, decayed, plain, state_, stream_);
    for (const auto& [b, e] : zero_ranges_)
      L2E_CUDA_CHECK(cudaMemsetAsync(g_.f32() + b, 0, (e - b) * sizeof(float), stream_));
    read_back();
    StepOutcome o;
    o.loss = host_->loss;
    o.grad_norm = host_->norm;
    o.skipped = host_->skipped != 0;
    return o;
  }

 private:
  // The step's one read-back: StepState to pinned memory, wait, and clear the pending loss.
  void read_back() {
    L2E_CUDA_CHECK(cudaMemcpyAsync(host_, state_, sizeof(StepState), cudaMemcpyDeviceToHost, stream_));
    L2E_CUDA_CHECK(cudaMemsetAsync(&state_->loss, 0, sizeof(double), stream_));
    L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void release() {
    for (void* p : {static_cast<void*>(state_), static_cast<void*>(partials_), static_cast<void*>(descs_),
                    static_cast<void*>(work_), workspace_})
      if (p) pool_.free(p);
    state_ = nullptr;
    partials_ = nullptr;
    descs_ = nullptr;
    work_ = nullptr;
    workspace_ = nullptr;
    if (host_) cudaFreeHost(host_);
    host_ = nullptr;
  }

  cudaStream_t stream_;
  DevicePool& pool_;
  Buf g_;
  std::vector<std::pair<size_t, size_t>> zero_ranges_;
  StepState* state_ = nullptr;
  StepState* host_ = nullptr;  // pinned
  double* partials_ = nullptr;
  AdamwTensorDesc* descs_ = nullptr;
  AdamwBlockWork* work_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  unsigned blocks_ = 0;
  int partial_count_ = 0;
};

}  // namespace

std::unique_ptr<DeviceStep> make_device_step(cudaStream_t s, DevicePool& pool, Buf& w, Buf& g, Buf& m, Buf& v,
                                             Buf* shadow, const std::vector<AdamwTensor>& tensors,
                                             const std::vector<std::pair<size_t, size_t>>& zero_ranges) {
  return std::make_unique<CudaDeviceStep>(s, pool, w, g, m, v, shadow, tensors, zero_ranges);
}

}  // namespace cuda
}  // namespace l2e
