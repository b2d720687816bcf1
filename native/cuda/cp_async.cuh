// Asynchronous global -> shared copies of sm_80 (PTX ISA "cp.async", "cp.async.commit_group",
// "cp.async.wait_group"): a thread issues copies, closes them into a group with cp_async_commit(),
// and cp_async_wait<N>() returns once all but its N most recent groups have landed. A wait covers
// only the calling thread's copies: other threads see them after a __syncthreads that follows it.
// The emulation build runs them through emulation/ptx_async.cpp (which lands copies only at waits).
// Each asm names a "memory" clobber: the compiler must neither move a shared-memory load above a wait
// nor a store below an issue (the emulation's out-of-line calls are compiler barriers already, so a
// missing clobber could never show there).
#pragma once
#include "cuda/device_utils.cuh"
#ifdef L2E_CUDA_EMULATION
#include "cuda/emulation/ptx_async.h"
#endif

namespace l2e {
namespace cuda {

// 16 bytes (.cg: through L2 only, the streaming case); the first src_bytes (0 or 16 here) come from
// src, the rest are zeros: a row past the sequence costs no read (src must still be a valid address).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
#ifdef L2E_CUDA_EMULATION
  ::l2e::emu::ptx::cp_async(true, d, src, 16, src_bytes);
#else
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
#endif
}

// 4 bytes (.ca), same zero-fill rule (src_bytes 0 or 4).
__device__ __forceinline__ void cp_async4(void* dst, const void* src, int src_bytes) {
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
#ifdef L2E_CUDA_EMULATION
  ::l2e::emu::ptx::cp_async(false, d, src, 4, src_bytes);
#else
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src), "r"(src_bytes) : "memory");
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#ifdef L2E_CUDA_EMULATION
  ::l2e::emu::ptx::cp_async_commit_group();
#else
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
#ifdef L2E_CUDA_EMULATION
  ::l2e::emu::ptx::cp_async_wait_group(N);
#else
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

}  // namespace cuda
}  // namespace l2e
