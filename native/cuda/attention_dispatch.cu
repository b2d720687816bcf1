// The attention ops of the CUDA backend: tensor-core kernels for hd 64 / 128 on sm_80+, the simple
// kernel otherwise (or when forced, for cross-checks); the backward's D_i = dO_i . o_i row dots.
#include "cuda/attention_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

// D[h, t] = dO[t, h, :] . O[t, h, :], one warp per (token, head), fp32.
__global__ void row_dot_kernel(const bf16* dout, const bf16* out, int T, int nh, int hd, float* D) {
  const size_t warp = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (warp >= size_t(T) * nh) return;
  const size_t t = warp / nh, h = warp % nh;
  const bf16* a = dout + (t * nh + h) * hd;
  const bf16* b = out + (t * nh + h) * hd;
  float s = 0.0f;
  for (int c = lane; c < hd; c += 32) s += to_f(a[c]) * to_f(b[c]);
  s = warp_sum(s);
  if (lane == 0) D[h * T + t] = s;
}

}  // namespace

bool attention_has_fast_path(int hd) { return hd == 64 || hd == 128; }

void attention_fwd(const void* q, const void* k, const void* v, const int32_t* cu, int B, int T, int nh, int nkv,
                   int hd, const int32_t* tiles, int num_tiles, void* out, float* lse, bool force_simple,
                   cudaStream_t s) {
  if (T == 0) return;
  if (!force_simple && attention_has_fast_path(hd)) flash_fwd(q, k, v, cu, T, nh, nkv, hd, tiles, num_tiles, out, lse, s);
  else simple_fwd(q, k, v, cu, B, T, nh, nkv, hd, out, lse, s);
}

size_t attention_bwd_workspace(int T, int nh, int hd) {
  return size_t(T) * nh * sizeof(float) + (attention_has_fast_path(hd) ? flash_bwd_workspace(T, nh, hd) : 0);
}

void attention_bwd(const void* q, const void* k, const void* v, const void* out, const float* lse,
                   const void* dout, const int32_t* cu, int B, int T, int nh, int nkv, int hd,
                   const int32_t* tiles, int num_tiles, void* dq, void* dk, void* dv, float* workspace,
                   bool force_simple, cudaStream_t s) {
  if (T == 0) return;
  const size_t rows = size_t(T) * nh;
  L2E_LAUNCH(row_dot_kernel, grid_for(rows * 32, 256, 1u << 30), 256, 0, s)(static_cast<const bf16*>(dout),
                                                                    static_cast<const bf16*>(out), T, nh, hd, workspace);
  check_launch("attention_backward_rowdot");
  if (!force_simple && attention_has_fast_path(hd))
    flash_bwd(q, k, v, dout, lse, workspace, cu, T, nh, nkv, hd, tiles, num_tiles, workspace + rows, dq, dk, dv, s);
  else
    simple_bwd(q, k, v, dout, lse, workspace, cu, B, T, nh, nkv, hd, dq, dk, dv, s);
}

}  // namespace cuda
}  // namespace l2e
