// The CUDA training step (core/device_step.h): everything between the loss and the next forward
// stays on the stream, and one small read-back ends the step.
//   infonce: the loss kernels, then loss_accumulate adds the mean to StepState::loss (device);
//   step:    sumsq partials -> step_decide (norm, skip, clip factor) -> adamw_multi over the
//            descriptor table built here once -> the gradients' zero ranges cleared (the embedding
//            table: the next backward writes the others, core/model_backward.cpp) -> StepState
//            copied to pinned host memory -> the one cudaStreamSynchronize.
// The embedding table's rows carry flags (table_rows.cu): a backward marks the rows its batch names
// before its scatter adds into them, and the step reads, updates and zeroes only the rows flagged,
// so the table (131M floats at the 600M shape, a quarter of its parameters) costs each step about
// its batch's rows: unflagged, the norm read 4 bytes of every row, AdamW 12 and the zeroing wrote 4.
// No CUDA graph: a packed batch changes T, B and the attention tile count every step (and cuBLAS its
// algorithms with them), so the forward and backward would need a graph per shape; the fixed-shape
// tail above is five operations, microseconds of launches in a step of milliseconds.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
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
                 const std::vector<AdamwTensor>& tensors, const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                 const ScatterTable& table)
      : stream_(s), pool_(pool), g_(g), table_(table) {
    const size_t tb = table.offset, te = table.offset + table.rows * table.width;
    // flags need whole groups of four per row (the norm's float4 loads) and 32-bit element indices
    const bool flagged = table.rows > 0 && table.width % 4 == 0 && tb % 4 == 0 && te <= g.numel &&
                         te - tb < (size_t(1) << 32) && reinterpret_cast<uintptr_t>(g.f32()) % 16 == 0;
    for (const auto& [b, e] : zero_ranges) {  // the table's rows are cleared by their flags instead
      if (!flagged) {
        zero_ranges_.emplace_back(b, e);
        continue;
      }
      if (b < std::min(e, tb)) zero_ranges_.emplace_back(b, std::min(e, tb));
      if (std::max(b, te) < e) zero_ranges_.emplace_back(std::max(b, te), e);
    }
    std::vector<AdamwTensorDesc> descs;
    std::vector<AdamwBlockWork> work;
    size_t table_desc = tensors.size();
    for (const AdamwTensor& t : tensors) {
      if (t.numel == 0) continue;
      AdamwTensorDesc d;
      d.w = static_cast<char*>(w.ptr) + t.offset * dtype_size(w.dtype);  // F32, or U16 halves with a shadow
      d.g = g.f32() + t.offset;
      d.m = m.f32() + t.offset;
      d.v = v.f32() + t.offset;
      d.shadow = shadow ? static_cast<char*>(shadow->ptr) + t.offset * dtype_size(shadow->dtype) : nullptr;
      d.n = t.numel;
      d.decay = t.decay ? 1 : 0;
      d.rows = nullptr;
      d.width = 1;
      if (flagged && t.offset == tb && t.numel == te - tb) table_desc = descs.size();
      for (size_t start = 0; start < t.numel; start += kAdamwBlockElems)
        work.push_back(AdamwBlockWork{uint32_t(descs.size()), start});
      descs.push_back(d);
    }
    blocks_ = unsigned(work.size());
    partial_count_ = sumsq_blocks(g.numel);
    try {
      if (flagged) {
        // g, m and v hold zeros now (TrainState makes the step after zeroing them): no row flagged
        flags_ = static_cast<uint8_t*>(pool_.alloc(table.rows));
        nonzero_ = static_cast<uint8_t*>(pool_.alloc(table.rows));
        L2E_CUDA_CHECK(cudaMemsetAsync(flags_, 0, table.rows, stream_));
        if (table_desc < descs.size()) {
          descs[table_desc].rows = flags_;
          descs[table_desc].width = uint32_t(table.width);
        }
      }
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
    const RowFlags rows{flags_, table_.offset, table_.offset + table_.rows * table_.width, uint32_t(table_.width)};
    if (g_.numel > 0) sumsq_partials(g_.f32(), g_.numel, partials_, stream_, flags_ ? &rows : nullptr);
    step_decide(partials_, g_.numel > 0 ? partial_count_ : 0, max_grad_norm, state_, stream_);
    adamw_multi(descs_, work_, blocks_, decayed, plain, state_, stream_);
    for (const auto& [b, e] : zero_ranges_)
      L2E_CUDA_CHECK(cudaMemsetAsync(g_.f32() + b, 0, (e - b) * sizeof(float), stream_));
    if (flags_) clear_rows(g_.f32() + table_.offset, flags_, table_.rows, uint32_t(table_.width), stream_);
    read_back();
    StepOutcome o;
    o.loss = host_->loss;
    o.grad_norm = host_->norm;
    o.skipped = host_->skipped != 0;
    return o;
  }

  void rows_scattered(const Buf& ids, int n) override {
    if (flags_) mark_rows(flags_, table_.rows, static_cast<const int32_t*>(ids.ptr), n, stream_);
  }

  void rows_written(const std::vector<uint8_t>& nonzero, bool gradients) override {
    if (!flags_) return;
    if (nonzero.size() != table_.rows) throw Error("rows_written: expected a byte for each of the table's rows");
    L2E_CUDA_CHECK(cudaMemcpyAsync(nonzero_, nonzero.data(), table_.rows, cudaMemcpyHostToDevice, stream_));
    set_rows(flags_, table_.rows, nonzero_, gradients, stream_);
    L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));  // a write from the host, not a step: `nonzero` is the caller's
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
                    static_cast<void*>(work_), workspace_, static_cast<void*>(flags_), static_cast<void*>(nonzero_)})
      if (p) pool_.free(p);
    flags_ = nullptr;
    nonzero_ = nullptr;
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
  ScatterTable table_;
  std::vector<std::pair<size_t, size_t>> zero_ranges_;  // the caller's, less the table when it is flagged
  uint8_t* flags_ = nullptr;    // table_rows.cu: one byte a row of the table; nullptr: not flagged
  uint8_t* nonzero_ = nullptr;  // rows_written's upload
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
                                             const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                                             const ScatterTable& table) {
  if (w.dtype != (shadow ? DType::U16 : DType::F32) || (shadow && shadow->dtype != DType::BF16))
    throw Error("cuda training step: the master must be F32 weights, or U16 low halves with BF16 parameters");
  return std::make_unique<CudaDeviceStep>(s, pool, w, g, m, v, shadow, tensors, zero_ranges, table);
}

}  // namespace cuda
}  // namespace l2e
