// Small device helpers shared by the kernels: bf16 <-> float element access for templated kernels,
// warp / block sums, and a grid-stride loop. Included by .cu files only.
//
// Kernel launches are written L2E_LAUNCH(kernel, grid, block, smem, stream)(args...), dynamic shared
// memory L2E_DYNAMIC_SHARED(type, name) and static shared arrays L2E_SHARED(type, name, [dims]): with
// nvcc these are <<<...>>>, extern __shared__ and __shared__; in the CPU emulation build
// (L2E_CUDA_EMULATION, native/cuda/emulation) calls into the emulator, which gives every block fresh
// NaN-filled shared memory.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#ifdef L2E_CUDA_EMULATION
#define L2E_LAUNCH(kernel, grid, block, smem, stream) L2E_EMU_LAUNCH(kernel, grid, block, smem, stream)
#define L2E_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::l2e::emu::dynamic_shared())
#define L2E_SHARED(T, name, dims) L2E_EMU_SHARED(T, name, dims)
#else
#define L2E_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define L2E_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#define L2E_SHARED(T, name, dims) __shared__ T name dims
#endif

#include <cstdint>
#ifdef L2E_CUDA_EMULATION
#include "cuda/emulation/ptx.h"
#endif

namespace l2e {
namespace cuda {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(bf16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_f<bf16>(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets it.
template <typename S>
__device__ S block_sum(S v) {
  L2E_SHARED(S, part, [32]);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[w] = v;
  __syncthreads();
  S t = lane < nw ? part[lane] : S(0);
  return warp_sum(t);
}

// 2^x by the special-function unit alone: ex2.approx.ftz.f32 (PTX ISA "ex2": subnormal inputs and
// results flush to zero). exp2f is ex2.approx.f32 without .ftz, which ptxas keeps exact for results
// below 2^-126 by a range test and two predicated multiplies around the MUFU.EX2; the softmax of
// attention adds such terms to sums that hold a 1 (the row's max), where they are below rounding.
__device__ __forceinline__ float exp2_ftz(float x) {
#ifdef L2E_CUDA_EMULATION
  return ::l2e::emu::ptx::ex2_approx_ftz_f32(x);
#else
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
#endif
}

inline unsigned grid_for(size_t n, int threads, unsigned cap = 65535u * 16u) {
  size_t g = (n + size_t(threads) - 1) / size_t(threads);
  if (g < 1) g = 1;
  return unsigned(g > cap ? cap : g);
}

#define L2E_GRID_STRIDE(i, n) \
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += size_t(gridDim.x) * blockDim.x)

}  // namespace cuda
}  // namespace l2e
