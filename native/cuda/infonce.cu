// InfoNCE over a contrastive batch on the GPU (the math of cpu/loss.cpp, in double where it does):
//   s_ij  = q_i . p_j / tau over the scored set of query i (all B*G passages, or its own group);
//   loss  = (1/B) sum_i (lse_i - s_{i,iG});   dS_ij = (softmax_ij - [j = iG]) / B
//   dq_i  = sum_j dS_ij p_j / tau;            dp_j = sum_i dS_ij q_i / tau
// Kernels: scores (one warp per pair), row softmax (one block per query), then dq and dp (one thread
// per output element). The per-row losses stay on the device for the host to sum.
#include <cfloat>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

// Workspace: S [B, NP] double (logits, then dS), row_loss [B] double.
__global__ void scores_kernel(const float* q, const float* p, int B, int G, int P, double inv_tau, bool in_batch,
                              float* scores, double* S) {
  const int NP = B * G;
  const size_t warp = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (warp >= size_t(B) * NP) return;
  const int i = int(warp / NP), j = int(warp % NP);
  const bool scored = in_batch || (j >= i * G && j < (i + 1) * G);
  if (!scored) {
    if (lane == 0) {
      scores[warp] = -INFINITY;
      S[warp] = -INFINITY;
    }
    return;
  }
  double d = 0.0;
  for (int c = lane; c < P; c += 32) d += double(q[size_t(i) * P + c]) * double(p[size_t(j) * P + c]);
  d = warp_sum(d);
  if (lane == 0) {
    S[warp] = d * inv_tau;
    scores[warp] = float(d * inv_tau);
  }
}

__global__ void softmax_kernel(int B, int G, double* S, double* row_loss) {
  const int NP = B * G, i = blockIdx.x;
  double* s = S + size_t(i) * NP;
  double mx = -DBL_MAX;
  for (int j = threadIdx.x; j < NP; j += blockDim.x) mx = fmax(mx, s[j]);  // -inf entries never win
  L2E_SHARED(double, red, [32]);
  for (int o = 16; o > 0; o >>= 1) mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
  __syncthreads();
  if (threadIdx.x < 32) {
    double v = threadIdx.x < (blockDim.x + 31) / 32 ? red[threadIdx.x] : -DBL_MAX;
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    if (threadIdx.x == 0) red[0] = v;
  }
  __syncthreads();
  mx = red[0];
  double sum = 0.0;
  for (int j = threadIdx.x; j < NP; j += blockDim.x) sum += exp(s[j] - mx);  // exp(-inf) = 0
  sum = block_sum(sum);
  const double lse = mx + log(sum);
  const int target = i * G;
  const double target_logit = s[target];
  __syncthreads();  // everyone has read s[target] before it is overwritten
  for (int j = threadIdx.x; j < NP; j += blockDim.x) {
    double d = exp(s[j] - lse) / B;
    if (j == target) d -= 1.0 / B;
    s[j] = d;
  }
  if (threadIdx.x == 0) row_loss[i] = lse - target_logit;
}

// out[r, c] = inv_tau * sum_x dS(r, x) src[x, c]; dS(r, x) = S[r*sr + x*sx].
__global__ void grad_kernel(const double* S, size_t sr, size_t sx, int rows, int inner, const float* src, int P,
                            double inv_tau, float* out) {
  const size_t n = size_t(rows) * P;
  L2E_GRID_STRIDE(e, n) {
    const size_t r = e / P, c = e % P;
    double acc = 0.0;
    for (int x = 0; x < inner; x++) {
      const double w = S[r * sr + size_t(x) * sx];
      if (w != 0.0) acc += w * double(src[size_t(x) * P + c]);
    }
    out[e] = float(acc * inv_tau);
  }
}

}  // namespace

size_t infonce_workspace(int B, int G) { return (size_t(B) * B * G + size_t(B)) * sizeof(double); }

const double* infonce(const float* q, const float* p, int B, int G, int P, float temperature, bool in_batch,
                      float* scores, float* dq, float* dp, void* workspace, cudaStream_t s) {
  const int NP = B * G;
  double* S = static_cast<double*>(workspace);
  double* row_loss = S + size_t(B) * NP;
  const double inv_tau = 1.0 / double(temperature);
  const size_t pairs = size_t(B) * NP;
  L2E_LAUNCH(scores_kernel, grid_for(pairs * 32, 256, 1u << 30), 256, 0, s)(q, p, B, G, P, inv_tau, in_batch, scores, S);
  check_launch("infonce_scores");
  L2E_LAUNCH(softmax_kernel, B, 256, 0, s)(B, G, S, row_loss);
  check_launch("infonce_softmax");
  L2E_LAUNCH(grad_kernel, grid_for(size_t(B) * P, 256), 256, 0, s)(S, NP, 1, B, NP, p, P, inv_tau, dq);    // dq = dS p
  check_launch("infonce_dq");
  L2E_LAUNCH(grad_kernel, grid_for(size_t(NP) * P, 256), 256, 0, s)(S, 1, NP, NP, B, q, P, inv_tau, dp);   // dp = dS^T q
  check_launch("infonce_dp");
  return row_loss;
}

}  // namespace cuda
}  // namespace l2e
