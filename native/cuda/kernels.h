// Host-side launchers of the CUDA kernels (one .cu file per job). Pointers are device pointers;
// "bf16" arguments hold __nv_bfloat16 data, passed as void* so this header stays plain C++.
// Every launcher enqueues on `s` and checks the launch; none synchronises.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/adamw_scalars.h"
#include "core/tensor.h"

namespace l2e {
namespace cuda {

// ---- elementwise.cu ----
void convert(void* dst, DType dst_t, const void* src, DType src_t, size_t n, cudaStream_t s);
void add_inplace(void* x, const void* y, DType t, size_t n, cudaStream_t s);          // x += y
void scale_f32(float* x, size_t n, float a, cudaStream_t s);                            // x *= a
void fill_rows_bf16(void* y, const void* row, int T, int N, cudaStream_t s);            // y[t,:] = row
void swiglu_fwd(const void* gate, const void* up, size_t n, void* out, cudaStream_t s);  // bf16
void swiglu_bwd(const void* gate, const void* up, const void* dout, size_t n, void* dgate, void* dup,
                cudaStream_t s);  // bf16

// ---- embedding.cu ----
void embedding_fwd(const int32_t* ids, int T, const void* table, int H, void* out, cudaStream_t s);  // bf16
// dtable[ids[t],:] += dout[t,:] (dout bf16, dtable F32). deterministic: per-column ownership in
// token order (the CPU's summation order) instead of atomics.
void embedding_bwd(const int32_t* ids, int T, const void* dout, int H, float* dtable, bool deterministic,
                   cudaStream_t s);

// ---- rmsnorm.cu ---- (x, w, y, dy, dx bf16; rstd F32)
void rmsnorm_fwd(void* x, const void* residual, const void* w, int T, int H, float eps, void* y, float* rstd,
                 cudaStream_t s);  // residual (nullptr: none) added into x first
void rmsnorm_bwd_dx(const void* x, const void* w, const float* rstd, const void* dy, int T, int H, void* dx,
                    bool accumulate, cudaStream_t s);

// ---- column_sums.cu ---- out[c] (+)= sum_t f(t, c) over T rows (accumulate: +=, else =), deterministic
// (fixed-order partials).
size_t column_sums_workspace(int T, int N);  // bytes
void bias_grad(const void* dy, int T, int N, float* dbias, bool accumulate, float* workspace,
               cudaStream_t s);  // f = dy (bf16)
void rmsnorm_weight_grad(const void* x, const void* dy, const float* rstd, int T, int H, float* dw, bool accumulate,
                         float* workspace, cudaStream_t s);  // f = dy x rstd

// ---- rope.cu ---- in place on bf16 x [T, heads*hd]; inv_freq[hd/2] computed on the host.
void rope(void* x, const int32_t* positions, int T, int heads, int hd, const float* inv_freq_host, float sign,
          cudaStream_t s);

// ---- pool_l2.cu ---- (x / out / y / dy / dx dtypes F32 or BF16; norm F32)
void pool_fwd(const void* x, DType xt, const int32_t* cu, int B, int P, int mode, void* out, DType ot,
              cudaStream_t s);
void pool_bwd(const void* dout, DType dt, const int32_t* cu, int B, int T, int P, int mode, void* dx, DType xt,
              cudaStream_t s);
void l2norm_fwd(const void* x, DType xt, int B, int P, bool normalize, void* y, DType yt, float* norm,
                cudaStream_t s);
void l2norm_bwd(const void* y, DType yt, const float* norm, const void* dy, DType dyt, int B, int P,
                bool normalize, void* dx, DType dxt, cudaStream_t s);

// ---- attention_*.cu ---- causal var-len GQA attention, bf16 q/k/v/out, lse [nh, T] F32 (natural log).
// Tensor-core kernels for hd 64 and 128 (sm_80+; the forward on wgmma + TMA on sm_90a: sm90 with one
// consumer warpgroup per block, sm90wg2 with two, sm90pp with two taking turns), a simple kernel for any
// other hd <= 256. The kernel is chosen per backend (AttentionKernel): auto takes sm90wg2 on a compute
// capability 9.0 device running the sm_90a image, else sm80, and simple where hd has no tensor-core
// kernel; an explicit choice that cannot run is an error. The backward of the sm90 kernels is sm80's.
enum class AttentionKernel { Auto, Simple, Sm80, Sm90, Sm90wg2, Sm90pp };
// "auto", "simple", "sm80", "sm90", "sm90wg2" or "sm90pp"; anything else throws Error naming `what` (a flag
// or variable).
AttentionKernel parse_attention_kernel(const std::string& name, const std::string& what);
bool attention_has_fast_path(int hd);
// A tile variant, for measurement: of the sm80 kernels (attention_fwd.cu / attention_bwd.cu name them) a
// forward name sets fwd, a backward name bwd; of the two-warpgroup sm_90a forward (sm90wg2 and sm90pp:
// attention_sm90wg2.cu) wg2. 0 is each one's default shapes. parse_attention_variant ("" or "default":
// all 0) throws Error naming `what` and the known names for anything else.
struct AttentionVariant {
  int fwd = 0;
  int bwd = 0;
  int wg2 = 0;
};
AttentionVariant parse_attention_variant(const std::string& name, const std::string& what);
// {"fwd:<name>", ..., "bwd:<name>", ..., "wg2:<name>", ...}: every variant, defaults first.
std::vector<std::string> attention_variants();
// tiles: the batch's tile schedule (Batch::tiles, num_tiles pairs), read by the flash kernels.
void attention_fwd(const void* q, const void* k, const void* v, const int32_t* cu, int B, int T, int nh, int nkv,
                   int hd, const int32_t* tiles, int num_tiles, void* out, float* lse, AttentionKernel kernel,
                   AttentionVariant variant, cudaStream_t s);
// workspace: attention_bwd_workspace(T, nh, hd) bytes (D_i = dO_i . o_i, then the flash kernel's fp32 dQ
// from a 256-byte boundary).
size_t attention_bwd_workspace(int T, int nh, int hd);
void attention_bwd(const void* q, const void* k, const void* v, const void* out, const float* lse,
                   const void* dout, const int32_t* cu, int B, int T, int nh, int nkv, int hd,
                   const int32_t* tiles, int num_tiles, void* dq, void* dk, void* dv, float* workspace,
                   AttentionKernel kernel, AttentionVariant variant, cudaStream_t s);

// ---- infonce.cu ---- q [B,P], p [B*G,P] F32; scores [B,B*G], dq, dp F32; workspace: see infonce_workspace.
size_t infonce_workspace(int B, int G);  // bytes
// Enqueues the loss; row_loss (B doubles, inside the workspace) is returned for the host to sum.
const double* infonce(const float* q, const float* p, int B, int G, int P, float temperature, bool in_batch,
                      float* scores, float* dq, float* dp, void* workspace, cudaStream_t s);

// ---- optimizer.cu ----
// Partial sums of squares (double) of n floats into `partials` (sumsq_blocks(n) doubles). With
// `table` (TableGrads), the n elements are the table's span and then x's n - span: a row of the table
// without a slot is zeros and is not read, so each partial is what the flat buffer would give.
int sumsq_blocks(size_t n);
struct TableGrads;
void sumsq_partials(const float* x, size_t n, double* partials, cudaStream_t s, const TableGrads* table = nullptr);
// AdamW with scalars prepared on the host exactly as the CPU kernel prepares them (cpu/adamw.cpp).
// The master is w (float*), or with shadow_bf16 the halves shadow_bf16 (hi) and w (uint16_t* lo) of
// core/master_halves.h.
void adamw(void* w, const float* g, float* m, float* v, size_t n, const AdamwScalars& a, void* shadow_bf16,
           cudaStream_t s);

// The training step over every parameter (cuda/train_step.cpp), decided and applied on the device.
struct StepState {
  double loss;   // pending loss: InfoNCE means added since the last read-back
  double norm;   // global gradient norm before clipping
  float clip;    // factor applied to the gradients when clipping
  int clipping;  // clip < 1 was decided
  int skipped;   // the norm or the pending loss is not finite: no update
};
struct AdamwTensorDesc {  // one parameter tensor: its slices of the flat buffers
  void* w;               // the F32 master (float), or with `shadow` its low halves (uint16_t)
  const float* g;
  float* m;
  float* v;
  void* shadow;           // the master's bf16 half, the weights the forward reads (nullptr: none)
  size_t n;
  int decay;              // weight decay applies
  const uint8_t* rows;    // the table's row flags (table_rows.cu), else nullptr; with them g is unused:
                          // the gradient is adamw_multi's TableGrads
};
constexpr size_t kAdamwBlockElems = 4096;
struct AdamwBlockWork {  // one block of the one-launch AdamW: elements [start, start + kAdamwBlockElems)
  uint32_t tensor;
  size_t start;
};

// ---- table_rows.cu ---- the embedding table's gradient (the one tensor a scatter adds into rather
// than writes, core/model_backward.cpp), held apart from the flat gradient buffer: only the rows a
// step's backward names, each given a row ("slot") of a small [capacity, width] buffer when first
// named. Per row of the table: slots[r] (-1: none, the row's gradient is zeros) and a flag byte,
// kRowGrad (it has a slot) and kRowMoments (its AdamW moments may be nonzero: it has had a gradient,
// or the host wrote them). A row with neither has zero gradients and +0 moments: without decay the
// step leaves it as it is (optimizer.cu), reading none of it.
constexpr uint8_t kRowGrad = 1, kRowMoments = 2;
struct TableGrads {
  const int32_t* slots;  // [rows]
  const float* slab;     // [capacity, width]: row r's gradient at slab + slots[r] * width
  size_t elems, span;    // rows * width, and with the padding before the next tensor (span % 4 == 0)
  uint32_t width;        // elements a row (a multiple of 4; span < 2^31)
};
// For each id (in [0, rows)) without a slot: the next slot (*used, then incremented) for it,
// row_of[slot] = id, kRowGrad set; then mapped[i] = slots[ids[i]]. The caller makes sure *used + n
// slots fit; slot numbers depend on scheduling, the values in them do not.
void assign_slots(uint8_t* flags, int32_t* slots, int32_t* row_of, int32_t* used, const int32_t* ids, int n,
                  int32_t* mapped, cudaStream_t s);
// From a host write: flags[r] |= flag where nonzero[r] (device memory, one byte a row).
void set_row_flags(uint8_t* flags, size_t rows, const uint8_t* nonzero, uint8_t flag, cudaStream_t s);
// After a step: of the first `bound` slots, each below *used zeroed in `slab` and its row left with
// no slot, flagged kRowMoments alone; then *used = 0.
void clear_slots(float* slab, int32_t* slots, const int32_t* row_of, uint8_t* flags, int32_t* used, size_t bound,
                 uint32_t width, cudaStream_t s);

// st->norm, skipped, clip from the sumsq partials (sumsq_blocks(n) of them) and st->loss.
void step_decide(const double* partials, int blocks, float max_grad_norm, StepState* st, cudaStream_t s);
// AdamW over every tensor in one launch (blocks = number of work items); nothing when st->skipped.
// The tensor whose descriptor has row flags takes its gradient from `table`.
void adamw_multi(const AdamwTensorDesc* tensors, const AdamwBlockWork* work, unsigned blocks,
                 const AdamwScalars& decayed, const AdamwScalars& plain, const StepState* st, const TableGrads& table,
                 cudaStream_t s);
// st->loss += float(mean of the B row losses infonce() left on the device).
void loss_accumulate(const double* row_loss, int B, StepState* st, cudaStream_t s);

}  // namespace cuda
}  // namespace l2e
