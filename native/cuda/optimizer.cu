// Global gradient norm (sum of squares in double) and fused AdamW, per tensor (the op table's adamw)
// and over every parameter in one launch (the training step, cuda/train_step.cpp).
//
// AdamW repeats cpu/adamw.cpp operation by operation (torch.optim.AdamW's single-tensor path) with
// round-to-nearest intrinsics, which nvcc never contracts into FMAs, so given the same inputs the GPU
// and CPU results are bit-identical:
//   w = w (1 - lr wd);  m = lerp(m, g, 1 - b1);  v = v b2 + ((1 - b2) g) g
//   w = w + (-lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
// It steps the fp32 master weights: a float buffer, or (with `shadow`, the training step's case) the
// halves of core/master_halves.h, the bf16 weights the forward reads and the low 16 bits, both
// read and written in the same pass (the update itself is on the joined fp32 value).
//
// The one-launch step reads what step_decide_kernel left on the device (StepState): the global norm
// sqrt(sum of the sumsq partials, added in block order as the host did), the non-finite skip
// (norm or pending loss not finite: no update), and torch's clip_grad_norm_ factor
// coef = max_norm / (norm + 1e-6), applied when < 1 as the scale op did: g = g * float(coef).
#include "core/master_halves.h"
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

constexpr int kSumThreads = 256;
constexpr int kMaxSumBlocks = 1024;

// Memory-bound passes (the step reads every gradient here, and AdamW moves 28 bytes a parameter: g, m,
// v and the master's two halves read, all but g written) move 16 bytes per thread and load: float4
// over the 16-byte-aligned body (the halves 8 bytes each), scalars for what is left.
__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// The gradient's element e, with the table held apart (t.slots): the table's span first, each row
// read through its slot (no slot, or the padding after the rows: zero), then x from e - span.
__device__ __forceinline__ float grad_at(const float* x, const TableGrads& t, size_t e) {
  if (!t.slots) return x[e];
  if (e >= t.span) return x[e - t.span];
  if (e >= t.elems) return 0.0f;
  const int32_t s = t.slots[uint32_t(e) / t.width];
  return s < 0 ? 0.0f : t.slab[size_t(s) * t.width + uint32_t(e) % t.width];
}

// With the table held apart, n counts its span too. A group of four lies in one row (width % 4 == 0)
// or in the padding; a row without a slot and the padding are zeros and not read: the sums each
// thread makes are those of the flat buffer, as adding +0 to a sum of squares leaves it as it is.
__global__ void sumsq_kernel(const float* x, size_t n, double* partials, TableGrads t) {
  double acc = 0.0;
  const size_t n4 = aligned16(x) && (!t.slots || aligned16(t.slab)) ? n / 4 : 0;
  const float4* x4 = reinterpret_cast<const float4*>(x);
  L2E_GRID_STRIDE(i, n4) {
    const size_t e = 4 * i;
    float4 v;
    if (t.slots && e < t.span) {
      if (e >= t.elems) continue;
      const int32_t s = t.slots[uint32_t(e) / t.width];
      if (s < 0) continue;
      v = *reinterpret_cast<const float4*>(t.slab + size_t(s) * t.width + uint32_t(e) % t.width);
    } else {
      v = x4[i - (t.slots ? t.span / 4 : 0)];
    }
    acc += double(v.x) * v.x + double(v.y) * v.y + double(v.z) * v.z + double(v.w) * v.w;
  }
  for (size_t i = 4 * n4 + size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) {
    const double v = grad_at(x, t, i);
    acc += v * v;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

// One element of AdamW on registers (gi already clipped).
__device__ __forceinline__ void adamw_update(float& wi, float gi, float& mi, float& vi, const AdamwScalars& a) {
  if (a.decays) wi = __fmul_rn(wi, a.decay);
  const float diff = __fsub_rn(gi, mi);
  mi = a.lerp_small ? __fmaf_rn(a.lerp_w, diff, mi) : __fmaf_rn(__fsub_rn(a.lerp_w, 1.0f), diff, gi);
  vi = __fmul_rn(vi, a.b2);
  const float gg = __fmul_rn(a.one_minus_b2, gi);
  vi = __fadd_rn(vi, __fmul_rn(gg, gi));
  const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), a.bc2_sqrt), a.eps);
  const float num = __fmul_rn(a.neg_step, mi);
  wi = __fadd_rn(wi, __fdiv_rn(num, denom));
}

// The master from its halves, and back (core/master_halves.h).
__device__ __forceinline__ float joined(uint16_t hi, uint16_t lo) { return __uint_as_float(master_bits(hi, lo)); }
__device__ __forceinline__ void split(float w, uint16_t& hi, uint16_t& lo) {
  const uint32_t bits = __float_as_uint(w);
  hi = master_hi(bits);
  lo = master_lo(bits);
}

// Four consecutive elements from registers (the same operations as adamw_update, one by one).
__device__ __forceinline__ void adamw_elements4(float4& w, float4 g, float4& m, float4& v, const AdamwScalars& a) {
  adamw_update(w.x, g.x, m.x, v.x, a);
  adamw_update(w.y, g.y, m.y, v.y, a);
  adamw_update(w.z, g.z, m.z, v.z, a);
  adamw_update(w.w, g.w, m.w, v.w, a);
}

// One element in memory: the master at w[i] (float), or with `hi` at hi[i] and lo = w (uint16_t).
__device__ __forceinline__ void adamw_element(void* w, float gi, float* m, float* v, const AdamwScalars& a,
                                              uint16_t* hi, size_t i) {
  uint16_t* lo = static_cast<uint16_t*>(w);
  float wi = hi ? joined(hi[i], lo[i]) : static_cast<float*>(w)[i];
  float mi = m[i], vi = v[i];
  adamw_update(wi, gi, mi, vi, a);
  if (hi) split(wi, hi[i], lo[i]);
  else static_cast<float*>(w)[i] = wi;
  m[i] = mi;
  v[i] = vi;
}

__global__ void adamw_kernel(void* w, const float* g, float* m, float* v, size_t n, AdamwScalars a, uint16_t* hi) {
  L2E_GRID_STRIDE(i, n) adamw_element(w, g[i], m, v, a, hi, i);
}

// Without decay, four elements whose gradients are 0 (of either sign, clipped or not) and whose moments
// are +0 (a parameter that has had no gradient yet: most rows of an embedding table) come out of the
// update as they went in, bit for bit (cpu/adamw.cpp's proof: m = +0, v = +0, w + -0 / eps = w), and
// the halves are already w's (written by the step or the load that last set w). The multi-tensor
// step then reads 12 bytes of them instead of moving 28, as the CPU step skips 8 such elements; of the
// embedding table's rows flagged neither kRowGrad nor kRowMoments (table_rows.cu) it reads nothing.
__device__ __forceinline__ bool untouched4(const float4& g, const float4& m, const float4& v) {
  const uint32_t bits = __float_as_uint(m.x) | __float_as_uint(m.y) | __float_as_uint(m.z) | __float_as_uint(m.w) |
                        __float_as_uint(v.x) | __float_as_uint(v.y) | __float_as_uint(v.z) | __float_as_uint(v.w);
  return bits == 0 && g.x == 0.0f && g.y == 0.0f && g.z == 0.0f && g.w == 0.0f;
}

// One block per AdamwBlockWork: kAdamwBlockElems elements of one tensor.
// The table's descriptor (t.rows set) takes its gradient from `table`, through the slots.
__global__ void adamw_multi_kernel(const AdamwTensorDesc* tensors, const AdamwBlockWork* work, AdamwScalars decayed,
                                   AdamwScalars plain, const StepState* st, TableGrads table) {
  if (st->skipped) return;
  const AdamwBlockWork wk = work[blockIdx.x];
  const AdamwTensorDesc t = tensors[wk.tensor];
  const AdamwScalars a = t.decay ? decayed : plain;  // a copy: a reference to either parameter puts both on the stack
  const size_t end = wk.start + kAdamwBlockElems < t.n ? wk.start + kAdamwBlockElems : t.n;
  uint16_t* hi = static_cast<uint16_t*>(t.shadow);  // with it, t.w holds the master's low halves
  uint16_t* lo = static_cast<uint16_t*>(t.w);
  float* wf = static_cast<float*>(t.w);
  size_t body = wk.start;  // [start, body): float4 groups; [body, end): one by one
  const bool halves_aligned = hi && (reinterpret_cast<uintptr_t>(hi + wk.start) & 7u) == 0 &&
                              (reinterpret_cast<uintptr_t>(lo + wk.start) & 7u) == 0;
  const TableGrads& tg = table;  // with t.rows: the table's elements from 0, grad_at(nullptr, tg, i) for i < elems
  if ((halves_aligned || (!hi && aligned16(wf + wk.start))) && (t.rows ? aligned16(tg.slab) : aligned16(t.g + wk.start)) &&
      aligned16(t.m + wk.start) && aligned16(t.v + wk.start)) {
    body = wk.start + (end - wk.start) / 4 * 4;
    const bool clipping = st->clipping != 0;
    const float clip = st->clip;
    for (size_t i = wk.start + 4 * threadIdx.x; i < body; i += 4 * blockDim.x) {
      float4 g = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (t.rows) {
        const uint32_t r = uint32_t(i) / tg.width;
        if (!a.decays && t.rows[r] == 0) continue;  // table_rows.cu: g 0, m, v +0
        const int32_t slot = tg.slots[r];
        if (slot >= 0) g = *reinterpret_cast<const float4*>(tg.slab + size_t(slot) * tg.width + uint32_t(i) % tg.width);
      } else {
        g = *reinterpret_cast<const float4*>(t.g + i);
      }
      float4 m = *reinterpret_cast<const float4*>(t.m + i);
      float4 v = *reinterpret_cast<const float4*>(t.v + i);
      if (!a.decays && untouched4(g, m, v)) continue;  // the update would leave w, m, v (and the shadow) as they are
      float4 w;
      if (hi) {  // four halves each, two to a word, the lower address in the low bits
        const uint2 hi4 = *reinterpret_cast<const uint2*>(hi + i), lo4 = *reinterpret_cast<const uint2*>(lo + i);
        w = make_float4(joined(uint16_t(hi4.x), uint16_t(lo4.x)), joined(uint16_t(hi4.x >> 16), uint16_t(lo4.x >> 16)),
                        joined(uint16_t(hi4.y), uint16_t(lo4.y)), joined(uint16_t(hi4.y >> 16), uint16_t(lo4.y >> 16)));
      } else {
        w = *reinterpret_cast<const float4*>(wf + i);
      }
      if (clipping) g = make_float4(__fmul_rn(g.x, clip), __fmul_rn(g.y, clip), __fmul_rn(g.z, clip), __fmul_rn(g.w, clip));
      adamw_elements4(w, g, m, v, a);
      *reinterpret_cast<float4*>(t.m + i) = m;
      *reinterpret_cast<float4*>(t.v + i) = v;
      if (hi) {
        uint16_t h[4], l[4];
        split(w.x, h[0], l[0]);
        split(w.y, h[1], l[1]);
        split(w.z, h[2], l[2]);
        split(w.w, h[3], l[3]);
        *reinterpret_cast<uint2*>(hi + i) = make_uint2(h[0] | uint32_t(h[1]) << 16, h[2] | uint32_t(h[3]) << 16);
        *reinterpret_cast<uint2*>(lo + i) = make_uint2(l[0] | uint32_t(l[1]) << 16, l[2] | uint32_t(l[3]) << 16);
      } else {
        *reinterpret_cast<float4*>(wf + i) = w;
      }
    }
  }
  for (size_t i = body + threadIdx.x; i < end; i += blockDim.x) {
    const float g0 = t.rows ? grad_at(nullptr, tg, i) : t.g[i];
    const float gi = st->clipping ? __fmul_rn(g0, st->clip) : g0;
    adamw_element(t.w, gi, t.m, t.v, a, hi, i);
  }
}

// A single thread: the order of the host's sums, so the norm (and the clip factor) match it bitwise.
__global__ void step_decide_kernel(const double* partials, int blocks, float max_grad_norm, StepState* st) {
  double total = 0;
  for (int b = 0; b < blocks; b++) total += partials[b];
  const double norm = sqrt(total);
  st->norm = norm;
  st->skipped = !(norm - norm == 0.0) || !(st->loss - st->loss == 0.0);  // x - x is 0 only for finite x
  st->clipping = 0;
  st->clip = 1.0f;
  if (!st->skipped && max_grad_norm > 0) {
    const double coef = double(max_grad_norm) / (norm + 1e-6);
    if (coef < 1.0) {
      st->clipping = 1;
      st->clip = float(coef);
    }
  }
}

// loss += float(sum of row losses / B) (the host's order of sums and its rounding to float).
__global__ void loss_accumulate_kernel(const double* row_loss, int B, StepState* st) {
  double total = 0;
  for (int b = 0; b < B; b++) total += row_loss[b];
  st->loss += double(float(total / B));
}

}  // namespace

int sumsq_blocks(size_t n) { return int(grid_for(n, kSumThreads, kMaxSumBlocks)); }

void sumsq_partials(const float* x, size_t n, double* partials, cudaStream_t s, const TableGrads* table) {
  const TableGrads t = table ? *table : TableGrads{nullptr, nullptr, 0, 0, 1};
  L2E_LAUNCH(sumsq_kernel, sumsq_blocks(n), kSumThreads, 0, s)(x, n, partials, t);
  check_launch("sumsq");
}

void adamw(void* w, const float* g, float* m, float* v, size_t n, const AdamwScalars& a, void* shadow_bf16,
           cudaStream_t s) {
  if (n == 0) return;
  L2E_LAUNCH(adamw_kernel, grid_for(n, 256), 256, 0, s)(w, g, m, v, n, a, static_cast<uint16_t*>(shadow_bf16));
  check_launch("adamw");
}

void adamw_multi(const AdamwTensorDesc* tensors, const AdamwBlockWork* work, unsigned blocks,
                 const AdamwScalars& decayed, const AdamwScalars& plain, const StepState* st, const TableGrads& table,
                 cudaStream_t s) {
  if (blocks == 0) return;
  L2E_LAUNCH(adamw_multi_kernel, blocks, 256, 0, s)(tensors, work, decayed, plain, st, table);
  check_launch("adamw (all parameters)");
}

void step_decide(const double* partials, int blocks, float max_grad_norm, StepState* st, cudaStream_t s) {
  L2E_LAUNCH(step_decide_kernel, 1, 1, 0, s)(partials, blocks, max_grad_norm, st);
  check_launch("optimizer step (norm and clipping)");
}

void loss_accumulate(const double* row_loss, int B, StepState* st, cudaStream_t s) {
  L2E_LAUNCH(loss_accumulate_kernel, 1, 1, 0, s)(row_loss, B, st);
  check_launch("loss accumulation");
}

}  // namespace cuda
}  // namespace l2e
