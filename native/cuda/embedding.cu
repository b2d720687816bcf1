// Embedding gather (forward) and scatter-add (backward).
//   forward:  out[t,:] = table[ids[t],:]
//   backward: dtable[r,:] += sum_{t: ids[t] = r} dout[t,:]
// The backward's default is one fp32 atomicAdd per element (repeated ids collide rarely). With
// deterministic = true each thread owns one column and walks the tokens in order, which is the CPU's
// summation order, so results do not depend on scheduling (slower: only H threads).
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

__global__ void gather_kernel(const int32_t* ids, size_t n, const bf16* table, int H, bf16* out) {
  L2E_GRID_STRIDE(i, n) {
    const size_t t = i / size_t(H), c = i % size_t(H);
    out[i] = table[size_t(ids[t]) * size_t(H) + c];
  }
}

__global__ void scatter_atomic_kernel(const int32_t* ids, size_t n, const bf16* dout, int H, float* dtable) {
  L2E_GRID_STRIDE(i, n) {
    const size_t t = i / size_t(H), c = i % size_t(H);
    atomicAdd(dtable + size_t(ids[t]) * size_t(H) + c, to_f(dout[i]));
  }
}

__global__ void scatter_ordered_kernel(const int32_t* ids, int T, const bf16* dout, int H, float* dtable) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= H) return;
  for (int t = 0; t < T; t++) {
    float* d = dtable + size_t(ids[t]) * size_t(H) + c;
    *d += to_f(dout[size_t(t) * H + c]);
  }
}

}  // namespace

void embedding_fwd(const int32_t* ids, int T, const void* table, int H, void* out, cudaStream_t s) {
  const size_t n = size_t(T) * size_t(H);
  if (n == 0) return;
  L2E_LAUNCH(gather_kernel, grid_for(n, 256), 256, 0, s)(ids, n, static_cast<const bf16*>(table), H, static_cast<bf16*>(out));
  check_launch("embedding");
}

void embedding_bwd(const int32_t* ids, int T, const void* dout, int H, float* dtable, bool deterministic,
                   cudaStream_t s) {
  const size_t n = size_t(T) * size_t(H);
  if (n == 0) return;
  if (deterministic) {
    L2E_LAUNCH(scatter_ordered_kernel, (H + 127) / 128, 128, 0, s)(ids, T, static_cast<const bf16*>(dout), H, dtable);
  } else {
    L2E_LAUNCH(scatter_atomic_kernel, grid_for(n, 256), 256, 0, s)(ids, n, static_cast<const bf16*>(dout), H, dtable);
  }
  check_launch("embedding_backward");
}

}  // namespace cuda
}  // namespace l2e
