// Gradients that are sums over tokens (column sums of a [T, N] matrix), deterministic:
//   bias:    db[n] (+)= sum_t dy[t,n]
//   rmsnorm: dw[i] (+)= sum_t dy[t,i] x[t,i] rstd[t]
// Pass 1: the T rows are cut into C chunks; block (column tile, chunk) sums its rows in a fixed order
// into partial[chunk, n]. Pass 2: out[n] += (or, written, =) the sum over chunks in order. No atomics,
// so the result does not depend on scheduling.
#include <algorithm>

#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

constexpr int kCols = 32;       // columns per block (one warp wide)
constexpr int kRowLanes = 8;    // rows summed in parallel per block
constexpr int kMaxChunks = 128;

int chunks_for(int T) { return std::max(1, std::min(kMaxChunks, (T + 255) / 256)); }

struct BiasTerm {
  const bf16* dy;
  __device__ float operator()(size_t t, int n, int N) const { return to_f(dy[t * N + n]); }
};
struct NormWeightTerm {
  const bf16* dy;
  const bf16* x;
  const float* rstd;
  __device__ float operator()(size_t t, int n, int N) const {
    return to_f(dy[t * N + n]) * to_f(x[t * N + n]) * rstd[t];
  }
};

template <typename Term>
__global__ void partial_kernel(Term f, int T, int N, int rows_per_chunk, float* partial) {
  L2E_SHARED(float, acc, [kRowLanes][kCols]);
  const int n = blockIdx.x * kCols + threadIdx.x;
  const int chunk = blockIdx.y;
  const int t0 = chunk * rows_per_chunk, t1 = min(T, t0 + rows_per_chunk);
  float sum = 0.0f;
  if (n < N)
    for (int t = t0 + threadIdx.y; t < t1; t += kRowLanes) sum += f(size_t(t), n, N);
  acc[threadIdx.y][threadIdx.x] = sum;
  __syncthreads();
  if (threadIdx.y == 0 && n < N) {
    float s = 0.0f;
    for (int r = 0; r < kRowLanes; r++) s += acc[r][threadIdx.x];
    partial[size_t(chunk) * N + n] = s;
  }
}

__global__ void finish_kernel(const float* partial, int chunks, int N, bool accumulate, float* out) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n >= N) return;
  float s = 0.0f;
  for (int c = 0; c < chunks; c++) s += partial[size_t(c) * N + n];
  out[n] = accumulate ? out[n] + s : s;
}

template <typename Term>
void column_sums(Term f, int T, int N, bool accumulate, float* out, float* workspace, cudaStream_t s) {
  if (N <= 0) return;
  if (T <= 0) {  // sums over no rows: zeros when written
    if (!accumulate) L2E_CUDA_CHECK(cudaMemsetAsync(out, 0, size_t(N) * sizeof(float), s));
    return;
  }
  const int chunks = chunks_for(T);
  const int rows = (T + chunks - 1) / chunks;
  dim3 grid((N + kCols - 1) / kCols, chunks), block(kCols, kRowLanes);
  L2E_LAUNCH(partial_kernel, grid, block, 0, s)(f, T, N, rows, workspace);
  check_launch("column_sums");
  L2E_LAUNCH(finish_kernel, (N + 255) / 256, 256, 0, s)(workspace, chunks, N, accumulate, out);
  check_launch("column_sums_finish");
}

}  // namespace

size_t column_sums_workspace(int T, int N) { return size_t(chunks_for(T)) * size_t(N) * sizeof(float); }

void bias_grad(const void* dy, int T, int N, float* dbias, bool accumulate, float* workspace, cudaStream_t s) {
  column_sums(BiasTerm{static_cast<const bf16*>(dy)}, T, N, accumulate, dbias, workspace, s);
}

void rmsnorm_weight_grad(const void* x, const void* dy, const float* rstd, int T, int H, float* dw, bool accumulate,
                         float* workspace, cudaStream_t s) {
  column_sums(NormWeightTerm{static_cast<const bf16*>(dy), static_cast<const bf16*>(x), rstd}, T, H, accumulate, dw,
              workspace, s);
}

}  // namespace cuda
}  // namespace l2e
