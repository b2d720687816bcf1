// Rotary position embedding in place (transformers' rotate-half), one block per token:
//   a_i = pos * inv_freq[i] (float32, as transformers), c = cos a, s = sign * sin a (computed in
//   double from the float angle, like the CPU kernel, then rounded to float), and per head
//   x'[i] = x[i] c - x[i+hd/2] s,   x'[i+hd/2] = x[i+hd/2] c + x[i] s.
// sign = -1 applies the transpose rotation, which is the backward pass (R(a)^T = R(-a)).
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

constexpr int kMaxHalf = 128;  // head dims up to 256

struct InvFreq {
  float v[kMaxHalf];
};

__global__ void rope_kernel(bf16* x, const int32_t* positions, int heads, int hd, InvFreq inv, float sign) {
  L2E_SHARED(float, cs, [kMaxHalf]);
  L2E_SHARED(float, sn, [kMaxHalf]);
  const size_t t = blockIdx.x;
  const int half = hd / 2;
  const float pos = float(positions[t]);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const float a = __fmul_rn(pos, inv.v[i]);  // float32 product, never fused
    double sd, cd;
    sincos(double(a), &sd, &cd);
    cs[i] = float(cd);
    sn[i] = sign * float(sd);
  }
  __syncthreads();
  bf16* row = x + t * size_t(heads) * hd;  // [heads, hd]
  for (int e = threadIdx.x; e < heads * half; e += blockDim.x) {
    const int h = e / half, i = e % half;
    bf16* xh = row + size_t(h) * hd;
    const float x1 = to_f(xh[i]), x2 = to_f(xh[i + half]);
    xh[i] = from_f<bf16>(x1 * cs[i] - x2 * sn[i]);
    xh[i + half] = from_f<bf16>(x2 * cs[i] + x1 * sn[i]);
  }
}

}  // namespace

void rope(void* x, const int32_t* positions, int T, int heads, int hd, const float* inv_freq_host, float sign,
          cudaStream_t s) {
  if (T == 0) return;
  if (hd / 2 > kMaxHalf) throw Error("cuda rope: head_dim above 256 is not supported");
  InvFreq inv{};
  for (int i = 0; i < hd / 2; i++) inv.v[i] = inv_freq_host[i];
  L2E_LAUNCH(rope_kernel, T, 128, 0, s)(static_cast<bf16*>(x), positions, heads, hd, inv, sign);
  check_launch("rope");
}

}  // namespace cuda
}  // namespace l2e
