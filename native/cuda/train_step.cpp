// The CUDA training step (core/device_step.h): everything between the loss and the next forward
// stays on the stream, and one small read-back ends the step.
//   infonce: the loss kernels, then loss_accumulate adds the mean to StepState::loss (device);
//   step:    sumsq partials -> step_decide (norm, skip, clip factor) -> adamw_multi over the
//            descriptor table built here once -> the gradients' zero ranges cleared (the embedding
//            table: the next backward writes the others, core/model_backward.cpp) -> StepState
//            copied to pinned host memory -> the one cudaStreamSynchronize.
// The embedding table's gradient is held here, apart from the flat buffer (table_rows.cu): before a
// backward's scatter, the rows its batch names get slots in a [capacity, width] buffer and the ids
// are mapped to them; the norm reads and the clearing zeroes only those rows, and AdamW without
// weight decay updates only the rows with a gradient or moments (with decay it moves every row, but
// reads gradients through the slots). So the table's gradient (131M floats at the 600M shape, a
// quarter of its parameters) costs each step about its batch's rows: 0.49 GiB less while a step names
// under half the vocabulary (past half, the buffer is the whole table, the dense gradient's size).
// The capacity comes from the rows named since the last step, counted on the host from the batch's
// ids, never from a read of the device.
// No CUDA graph: a packed batch changes T, B and the attention tile count every step (and cuBLAS its
// algorithms with them), so the forward and backward would need a graph per shape; the fixed-shape
// tail above is five operations, microseconds of launches in a step of milliseconds.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
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
      : stream_(s), pool_(pool), g_(g), zero_ranges_(zero_ranges), held_(holds_table(table)) {
    if (held_) table_ = table;
    const size_t base = held_ ? table.span : 0;  // g's element i is the layout's base + i
    std::vector<AdamwTensorDesc> descs;
    std::vector<AdamwBlockWork> work;
    for (const AdamwTensor& t : tensors) {
      if (t.numel == 0) continue;
      const bool is_table = held_ && t.offset == 0 && t.numel == table.rows * table.width;
      if (!is_table && t.offset < base) throw Error("cuda training step: a tensor lies in the embedding table's span");
      AdamwTensorDesc d;
      d.w = static_cast<char*>(w.ptr) + t.offset * dtype_size(w.dtype);  // F32, or U16 halves with a shadow
      d.g = is_table ? nullptr : g.f32() + (t.offset - base);
      d.m = m.f32() + t.offset;
      d.v = v.f32() + t.offset;
      d.shadow = shadow ? static_cast<char*>(shadow->ptr) + t.offset * dtype_size(shadow->dtype) : nullptr;
      d.n = t.numel;
      d.decay = t.decay ? 1 : 0;
      d.rows = nullptr;  // the table's flags, once allocated
      if (is_table) table_desc_ = descs.size();
      for (size_t start = 0; start < t.numel; start += kAdamwBlockElems)
        work.push_back(AdamwBlockWork{uint32_t(descs.size()), start});
      descs.push_back(d);
    }
    blocks_ = unsigned(work.size());
    partial_count_ = sumsq_blocks(base + g.numel);
    try {
      if (held_) {
        // g, m and v hold zeros now (TrainState makes the step after zeroing them): no row has a slot
        flags_ = static_cast<uint8_t*>(pool_.alloc(table.rows));
        nonzero_ = static_cast<uint8_t*>(pool_.alloc(table.rows));
        slots_ = static_cast<int32_t*>(pool_.alloc(table.rows * sizeof(int32_t)));
        used_ = static_cast<int32_t*>(pool_.alloc(sizeof(int32_t)));
        L2E_CUDA_CHECK(cudaMemsetAsync(flags_, 0, table.rows, stream_));
        L2E_CUDA_CHECK(cudaMemsetAsync(slots_, 0xff, table.rows * sizeof(int32_t), stream_));  // -1: no slot
        L2E_CUDA_CHECK(cudaMemsetAsync(used_, 0, sizeof(int32_t), stream_));
        named_.assign(table.rows, 0);
        if (table_desc_ < descs.size()) descs[table_desc_].rows = flags_;
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

  // The table is held apart when it is the layout's first tensor, in rows of whole float4 groups, and
  // small enough for 32-bit element indices (the 600M / 1B table: 131M elements).
  static bool holds_table(const ScatterTable& t) {
    return t.rows > 0 && t.offset == 0 && t.width > 0 && t.width % 4 == 0 && t.span % 4 == 0 &&
           t.span >= t.rows * t.width && t.span < (size_t(1) << 31);
  }

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
    const TableGrads tg = table_grads();
    const size_t n = (held_ ? table_.span : 0) + g_.numel;
    if (n > 0) sumsq_partials(g_.f32(), n, partials_, stream_, held_ ? &tg : nullptr);
    step_decide(partials_, n > 0 ? partial_count_ : 0, max_grad_norm, state_, stream_);
    adamw_multi(descs_, work_, blocks_, decayed, plain, state_, tg, stream_);
    for (const auto& [b, e] : zero_ranges_)
      L2E_CUDA_CHECK(cudaMemsetAsync(g_.f32() + b, 0, (e - b) * sizeof(float), stream_));
    clear_table_gradients();
    read_back();
    StepOutcome o;
    o.loss = host_->loss;
    o.grad_norm = host_->norm;
    o.skipped = host_->skipped != 0;
    return o;
  }

  TableTarget rows_scattered(const Buf& ids, const int32_t* host_ids, int n) override {
    if (!held_ || n <= 0) return TableTarget{};
    // the rows named since the last clearing, counted on the host: the slots needed, exactly
    size_t fresh = 0;
    for (int i = 0; i < n; i++) {
      const int32_t r = host_ids[i];
      if (r < 0 || size_t(r) >= table_.rows) throw Error("rows_scattered: token id " + std::to_string(r) + " is outside the table");
      if (!named_[size_t(r)]) fresh++;
    }
    reserve_slots(bound_ + fresh);
    if (size_t(n) > mapped_capacity_) {
      int32_t* mapped = static_cast<int32_t*>(pool_.alloc(size_t(n) * sizeof(int32_t)));
      if (mapped_) pool_.free(mapped_);
      mapped_ = mapped;
      mapped_capacity_ = size_t(n);
    }
    for (int i = 0; i < n; i++) named_[size_t(host_ids[i])] = 1;
    bound_ += fresh;  // before the launches: a failed one still leaves the clearing every slot it gave
    assign_slots(flags_, slots_, row_of_, used_, static_cast<const int32_t*>(ids.ptr), n, mapped_, stream_);
    TableTarget t;
    t.rows = Buf{slab_, capacity_ * table_.width, DType::F32};
    t.ids = Buf{mapped_, size_t(n), DType::I32};
    return t;
  }

  // g's elements are all read each step; a held table's rows come through table_gradients_in
  void gradients_written() override {}

  void moment_rows_written(const std::vector<uint8_t>& nonzero) override {
    if (!held_) return;
    if (nonzero.size() != table_.rows) throw Error("moment_rows_written: expected a byte for each of the table's rows");
    L2E_CUDA_CHECK(cudaMemcpyAsync(nonzero_, nonzero.data(), table_.rows, cudaMemcpyHostToDevice, stream_));
    set_row_flags(flags_, table_.rows, nonzero_, kRowMoments, stream_);
    L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));  // a write from the host, not a step: `nonzero` is the caller's
  }

  // Rows holding anything but +0 (a sign bit or a NaN counts) get slots in row order.
  void table_gradients_in(const float* host) override {
    if (!held_) throw Error("table_gradients_in: the training step does not hold the table's gradient");
    clear_table_gradients();
    const size_t W = table_.width;
    std::vector<int32_t> slots(table_.rows, -1), row_of;
    std::vector<uint8_t> has(table_.rows, 0);
    for (size_t r = 0; r < table_.rows; r++) {
      const float* row = host + r * W;
      if (!std::any_of(row, row + W, [](float x) { return x != 0.0f || std::signbit(x); })) continue;
      slots[r] = int32_t(row_of.size());
      row_of.push_back(int32_t(r));
      has[r] = 1;
    }
    const size_t k = row_of.size();
    reserve_slots(k);
    named_ = has;
    std::vector<float> packed(k * W);
    for (size_t s = 0; s < k; s++) std::copy(host + size_t(row_of[s]) * W, host + size_t(row_of[s] + 1) * W, packed.data() + s * W);
    const int32_t used = int32_t(k);
    if (k > 0) {
      L2E_CUDA_CHECK(cudaMemcpyAsync(slab_, packed.data(), packed.size() * sizeof(float), cudaMemcpyHostToDevice, stream_));
      L2E_CUDA_CHECK(cudaMemcpyAsync(row_of_, row_of.data(), k * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
    }
    L2E_CUDA_CHECK(cudaMemcpyAsync(slots_, slots.data(), slots.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
    L2E_CUDA_CHECK(cudaMemcpyAsync(used_, &used, sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
    L2E_CUDA_CHECK(cudaMemcpyAsync(nonzero_, has.data(), table_.rows, cudaMemcpyHostToDevice, stream_));
    set_row_flags(flags_, table_.rows, nonzero_, kRowGrad, stream_);  // none has kRowGrad since the clearing
    bound_ = k;
    L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host vectors are read until here
  }

  void table_gradients_out(float* host) override {
    if (!held_) throw Error("table_gradients_out: the training step does not hold the table's gradient");
    const size_t W = table_.width;
    std::vector<int32_t> slots(table_.rows);
    int32_t used = 0;
    L2E_CUDA_CHECK(cudaMemcpyAsync(slots.data(), slots_, slots.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    L2E_CUDA_CHECK(cudaMemcpyAsync(&used, used_, sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<float> packed(size_t(used) * W);
    if (used > 0) {
      L2E_CUDA_CHECK(cudaMemcpyAsync(packed.data(), slab_, packed.size() * sizeof(float), cudaMemcpyDeviceToHost, stream_));
      L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
    }
    for (size_t r = 0; r < table_.rows; r++) {
      const int32_t s = slots[r];
      if (s >= 0 && s < used) std::copy(packed.data() + size_t(s) * W, packed.data() + size_t(s + 1) * W, host + r * W);
      else std::fill(host + r * W, host + (r + 1) * W, 0.0f);
    }
  }

  void clear_table_gradients() override {
    if (!held_) return;
    // rows cleared after a skipped step are flagged kRowMoments too: a flag that may be set needlessly
    clear_slots(slab_, slots_, row_of_, flags_, used_, bound_, uint32_t(table_.width), stream_);
    bound_ = 0;
    std::fill(named_.begin(), named_.end(), uint8_t(0));
  }

 private:
  TableGrads table_grads() const {
    if (!held_) return TableGrads{nullptr, nullptr, 0, 0, 1};
    return TableGrads{slots_, slab_, table_.rows * table_.width, table_.span, uint32_t(table_.width)};
  }
  // Room for `need` slots (at most the table's rows): a larger buffer, the slots in use copied over
  // (bound_ of them) and the rest zeros. It grows by half again at least, so a run settles; past half
  // the table it takes the whole table at once (the dense gradient's size), so that growing never
  // holds more than 1.5 times that.
  void reserve_slots(size_t need) {
    need = std::min(need, table_.rows);
    if (need <= capacity_) return;
    size_t cap = std::min(table_.rows, std::max({need, capacity_ + capacity_ / 2, size_t(64)}));
    if (cap > table_.rows / 2) cap = table_.rows;
    const size_t W = table_.width;
    float* slab = nullptr;
    int32_t* row_of = nullptr;
    try {
      slab = static_cast<float*>(pool_.alloc(cap * W * sizeof(float)));
      row_of = static_cast<int32_t*>(pool_.alloc(cap * sizeof(int32_t)));
      const size_t keep = std::min(bound_, capacity_);
      if (keep > 0) {
        L2E_CUDA_CHECK(cudaMemcpyAsync(slab, slab_, keep * W * sizeof(float), cudaMemcpyDeviceToDevice, stream_));
        L2E_CUDA_CHECK(cudaMemcpyAsync(row_of, row_of_, keep * sizeof(int32_t), cudaMemcpyDeviceToDevice, stream_));
      }
      L2E_CUDA_CHECK(cudaMemsetAsync(slab + keep * W, 0, (cap - keep) * W * sizeof(float), stream_));
    } catch (...) {
      if (slab) pool_.free(slab);
      if (row_of) pool_.free(row_of);
      throw;
    }
    if (slab_) pool_.free(slab_);  // the pool reuses it only for work enqueued after the copy
    if (row_of_) pool_.free(row_of_);
    slab_ = slab;
    row_of_ = row_of;
    capacity_ = cap;
  }
  // The step's one read-back: StepState to pinned memory, wait, and clear the pending loss.
  void read_back() {
    L2E_CUDA_CHECK(cudaMemcpyAsync(host_, state_, sizeof(StepState), cudaMemcpyDeviceToHost, stream_));
    L2E_CUDA_CHECK(cudaMemsetAsync(&state_->loss, 0, sizeof(double), stream_));
    L2E_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void release() {
    for (void* p : {static_cast<void*>(state_), static_cast<void*>(partials_), static_cast<void*>(descs_),
                    static_cast<void*>(work_), workspace_, static_cast<void*>(flags_), static_cast<void*>(nonzero_),
                    static_cast<void*>(slots_), static_cast<void*>(used_), static_cast<void*>(row_of_),
                    static_cast<void*>(slab_), static_cast<void*>(mapped_)})
      if (p) pool_.free(p);
    flags_ = nullptr;
    nonzero_ = nullptr;
    slots_ = nullptr;
    used_ = nullptr;
    row_of_ = nullptr;
    slab_ = nullptr;
    mapped_ = nullptr;
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
  std::vector<std::pair<size_t, size_t>> zero_ranges_;  // of g_
  bool held_;              // the table's gradient is held here (table_rows.cu), not in g_
  ScatterTable table_;     // with held_
  size_t table_desc_ = size_t(-1);
  uint8_t* flags_ = nullptr;    // kRowGrad / kRowMoments, a byte a row of the table
  uint8_t* nonzero_ = nullptr;  // a host write's upload, a byte a row
  int32_t* slots_ = nullptr;    // [rows]: the row's slot, or -1
  int32_t* used_ = nullptr;     // slots in use (device)
  int32_t* row_of_ = nullptr;   // [capacity_]: the row of each slot in use
  float* slab_ = nullptr;       // [capacity_, width]
  size_t capacity_ = 0;         // slots allocated
  size_t bound_ = 0;            // slots in use: rows named (or written) since the last clearing
  std::vector<uint8_t> named_;  // [rows]: named since the last clearing (host)
  int32_t* mapped_ = nullptr;   // a backward's ids mapped to slots
  size_t mapped_capacity_ = 0;
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

bool holds_table_gradients(const ScatterTable& table) { return CudaDeviceStep::holds_table(table); }

}  // namespace cuda
}  // namespace l2e
