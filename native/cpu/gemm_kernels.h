// Internal to sgemm: the micro-kernels (one per instruction set, each in its own file compiled with
// function-level target attributes) and the run-time choice between them.
#pragma once
#include <cstdint>

namespace l2e {
namespace gemm {

// C[mr,nr] (row stride ldc) = alpha * a b + beta * C over one register tile, where a is a packed
// sliver of op(A) ([kc][MR], k-major) and b a packed sliver of op(B) ([kc][NR]); both are zero
// padded, so the kernel always computes the full MR x NR tile and only writes the mr x nr corner.
// beta == 0 means C is write-only.
using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                             int mr, int nr, float alpha, float beta);

// Packing one sliver (of A or B) into dst[kc][W], zero-padding the unused lanes [n, W):
//   PackTranspose: dst[k][i] = src[i*ld + k], i < n (source lanes are rows, contiguous in k)
//   PackCopy:      dst[k][j] = src[k*ld + j], j < n (each k is a contiguous run of lanes)
using PackTranspose = void (*)(const float* src, int64_t ld, int n, int64_t kc, int W, float* dst);
using PackCopy = void (*)(const float* src, int64_t ld, int n, int64_t kc, int W, float* dst);

struct KernelInfo {
  const char* name;
  int mr, nr;          // register tile
  int64_t kc, mc, nc;  // cache blocks: kc deep, mc rows of op(A) per L2 block, nc cols of op(B)
  MicroKernel micro;
  PackTranspose pack_transpose;  // nullptr: the portable loops in gemm.cpp
  PackCopy pack_copy;
  // The same product for a caller that sweeps B slivers whole and in order (pre-packed weights
  // with one short band of A, gemm.cpp), prefetching B far ahead into L2; nullptr: micro.
  MicroKernel micro_stream = nullptr;
};

// Each is only valid to call on a CPU that supports it (see cpu/isa.h).
const KernelInfo& avx512_kernel();
const KernelInfo& avx2_kernel();
const KernelInfo& scalar_kernel();

// The kernel sgemm uses now: the one of cpu::active_isa(), unless set_kernel("avx512" | "avx2" |
// "scalar") picked another for a test (at most the level in use; l2e::Error for an unknown name or
// a level above it).
const KernelInfo& active_kernel();
void set_kernel(const char* name);

}  // namespace gemm
}  // namespace l2e
