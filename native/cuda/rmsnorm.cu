// RMSNorm forward and the dx part of its backward, one block per token row, fp32 accumulation.
//   forward:  r = 1/sqrt(mean(x^2) + eps),  y = w * bf16(x r)   (transformers' bf16 rounding order);
//             with a residual, first x = bf16(x + res) (elementwise.cu's add), stored, then normed:
//             the residual stream's add and the norm in one pass over the row
//   backward: with g_i = w_i dy_i, dr/dx_i = -r^3 x_i / H:
//             dx_i = r g_i - (r^3 / H) x_i sum_j g_j x_j
// (dw = sum_t dy x r is a column sum: column_sums.cu.)
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

constexpr int kThreads = 256;

// res: nullptr, or the residual added into x first. Each thread reads back in the second loop the
// elements of x it wrote in the first.
__global__ void rmsnorm_fwd_kernel(bf16* x, const bf16* res, const bf16* w, int H, float eps, bf16* y, float* rstd) {
  const size_t row = blockIdx.x;
  bf16* xr = x + row * H;  // [H]
  bf16* yr = y + row * H;  // [H]
  float ss = 0.0f;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float v = to_f(xr[i]);
    if (res) {
      const bf16 sum = from_f<bf16>(v + to_f(res[row * H + i]));
      xr[i] = sum;
      v = to_f(sum);
    }
    ss += v * v;
  }
  ss = block_sum(ss);
  const float r = rsqrtf(ss / float(H) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    const float normed = to_f(from_f<bf16>(to_f(xr[i]) * r));
    yr[i] = from_f<bf16>(to_f(w[i]) * normed);
  }
}

// dx may alias dy: each thread reads dy_i in both passes before it writes dx_i.
__global__ void rmsnorm_bwd_dx_kernel(const bf16* x, const bf16* w, const float* rstd, const bf16* dy, int H,
                                      bf16* dx, bool accumulate) {
  const size_t row = blockIdx.x;
  const bf16* xr = x + row * H;
  const bf16* gr = dy + row * H;
  bf16* dxr = dx + row * H;
  const float r = rstd[row];
  float dot = 0.0f;  // sum_j w_j dy_j x_j
  for (int i = threadIdx.x; i < H; i += blockDim.x) dot += to_f(w[i]) * to_f(gr[i]) * to_f(xr[i]);
  dot = block_sum(dot);
  const float c = r * r * r * dot / float(H);
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    float d = r * to_f(w[i]) * to_f(gr[i]) - c * to_f(xr[i]);
    if (accumulate) d += to_f(dxr[i]);
    dxr[i] = from_f<bf16>(d);
  }
}

}  // namespace

void rmsnorm_fwd(void* x, const void* residual, const void* w, int T, int H, float eps, void* y, float* rstd,
                 cudaStream_t s) {
  if (T == 0) return;
  L2E_LAUNCH(rmsnorm_fwd_kernel, T, kThreads, 0, s)(static_cast<bf16*>(x), static_cast<const bf16*>(residual),
                                                    static_cast<const bf16*>(w), H, eps, static_cast<bf16*>(y), rstd);
  check_launch("rmsnorm");
}

void rmsnorm_bwd_dx(const void* x, const void* w, const float* rstd, const void* dy, int T, int H, void* dx,
                    bool accumulate, cudaStream_t s) {
  if (T == 0) return;
  L2E_LAUNCH(rmsnorm_bwd_dx_kernel, T, kThreads, 0, s)(static_cast<const bf16*>(x), static_cast<const bf16*>(w), rstd,
                                               static_cast<const bf16*>(dy), H, static_cast<bf16*>(dx), accumulate);
  check_launch("rmsnorm_backward");
}

}  // namespace cuda
}  // namespace l2e
