// Global gradient norm (sum of squares in double) and fused AdamW.
//
// AdamW repeats cpu/adamw.cpp operation by operation (torch.optim.AdamW's single-tensor path) with
// round-to-nearest intrinsics, which nvcc never contracts into FMAs, so given the same inputs the GPU
// and CPU results are bit-identical:
//   w = w (1 - lr wd);  m = lerp(m, g, 1 - b1);  v = v b2 + ((1 - b2) g) g
//   w = w + (-lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps)
// It steps the fp32 master weights and, when `shadow` is given, writes their bf16 copy (the weights
// the forward pass reads) in the same pass.
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

constexpr int kSumThreads = 256;
constexpr int kMaxSumBlocks = 1024;

__global__ void sumsq_kernel(const float* x, size_t n, double* partials) {
  double acc = 0.0;
  L2E_GRID_STRIDE(i, n) {
    const double v = x[i];
    acc += v * v;
  }
  acc = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

__global__ void adamw_kernel(float* w, const float* g, float* m, float* v, size_t n, AdamwScalars a, bf16* shadow) {
  L2E_GRID_STRIDE(i, n) {
    float wi = w[i];
    const float gi = g[i];
    if (a.decays) wi = __fmul_rn(wi, a.decay);
    float mi = m[i];
    const float diff = __fsub_rn(gi, mi);
    mi = a.lerp_small ? __fmaf_rn(a.lerp_w, diff, mi) : __fmaf_rn(__fsub_rn(a.lerp_w, 1.0f), diff, gi);
    float vi = __fmul_rn(v[i], a.b2);
    const float gg = __fmul_rn(a.one_minus_b2, gi);
    vi = __fadd_rn(vi, __fmul_rn(gg, gi));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), a.bc2_sqrt), a.eps);
    const float num = __fmul_rn(a.neg_step, mi);
    wi = __fadd_rn(wi, __fdiv_rn(num, denom));
    w[i] = wi;
    m[i] = mi;
    v[i] = vi;
    if (shadow) shadow[i] = __float2bfloat16_rn(wi);
  }
}

}  // namespace

int sumsq_blocks(size_t n) { return int(grid_for(n, kSumThreads, kMaxSumBlocks)); }

void sumsq_partials(const float* x, size_t n, double* partials, cudaStream_t s) {
  L2E_LAUNCH(sumsq_kernel, sumsq_blocks(n), kSumThreads, 0, s)(x, n, partials);
  check_launch("sumsq");
}

void adamw(float* w, const float* g, float* m, float* v, size_t n, const AdamwScalars& a, void* shadow_bf16,
           cudaStream_t s) {
  if (n == 0) return;
  L2E_LAUNCH(adamw_kernel, grid_for(n, 256), 256, 0, s)(w, g, m, v, n, a, static_cast<bf16*>(shadow_bf16));
  check_launch("adamw");
}

}  // namespace cuda
}  // namespace l2e
