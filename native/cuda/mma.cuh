// bf16 tensor-core building blocks for the flash-attention kernels (sm_80+): mma.sync m16n8k16 with
// fp32 accumulators, swizzled shared-memory tiles, and ldmatrix loads of every operand fragment.
//
// Fragment layout (PTX ISA, mma.m16n8k16 .bf16; g = lane / 4, t = lane % 4; each .b32 register holds
// two bf16, the lower column / row index in the low half):
//   A (16x16, row-major) a0: (g, 2t..2t+1)   a1: (g+8, 2t..)   a2: (g, 2t+8..)   a3: (g+8, 2t+8..)
//   B (16x8, k x n)      b0: (k = 2t..2t+1, n = g)             b1: (k = 2t+8..2t+9, n = g)
//   C (16x8, fp32)       c0, c1: (g, 2t..2t+1)                 c2, c3: (g+8, 2t..2t+1)
// So the C tiles of two neighbouring n-tiles (16 x 16 columns) are exactly an A fragment once packed
// to bf16: that is how P = softmax(S) feeds P V without a trip through shared memory.
//
// ldmatrix .x4 (PTX ISA "ldmatrix"): lanes 8m..8m+7 give the 16-byte row addresses of 8x8 matrix m,
// which lands in register m as (row g, columns 2t, 2t+1); .trans delivers (rows 2t, 2t+1, column g).
// So each fragment above is one ldmatrix, with the lane -> row address maps of the frag_* loaders.
//
// Swizzle: a tile of C bf16 columns (C = 64 or 128) is stored row-major without padding, its 16-byte
// chunk c of row r at chunk (c ^ r) mod 8 of the same 8-chunk (128-byte) group. The 8 rows an
// ldmatrix phase reads, the 8 chunks a cp.async phase writes and the 8 rows a C-fragment store
// writes then fall in 8 distinct 16-byte bank groups: no bank conflicts. A 32-column tile (two rows
// per 128 bytes) puts chunk c of row r at c ^ ((r / 2) mod 4): 8 consecutive rows again cover the 8
// bank groups, (r mod 2) choosing the half and the XOR the chunk within it. (The ldmatrix reads are
// counted by the emulator's census: test/gpu/emulation-census.test.ts finds no bank conflict in any.)
#pragma once
#include "cuda/cp_async.cuh"
#include "cuda/device_utils.cuh"
#ifdef L2E_CUDA_EMULATION
#include "cuda/emulation/ptx.h"
#endif

namespace l2e {
namespace cuda {

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef L2E_CUDA_EMULATION
  const uint32_t b[2] = {b0, b1};
  ::l2e::emu::ptx::mma_m16n8k16_bf16_f32(c, a, b, c);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<uint32_t*>(&v);
}

// The A fragment of C tiles c[j0], c[j0 + 1] (16 rows x 16 columns, see the header).
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}

// Element offset of (r, c) in a swizzled tile of C columns.
template <int C>
__device__ __forceinline__ int swz(int r, int c) {
  static_assert(C == 32 || C % 64 == 0, "swizzled tiles are 32 columns or whole 128-byte chunk groups wide");
  const int chunk = c >> 3;
  if (C == 32) return r * C + ((chunk ^ (r >> 1)) & 3) * 8 + (c & 7);
  return r * C + (((chunk ^ r) & 7) | (chunk & ~7)) * 8 + (c & 7);
}

// ldmatrix's asm names no "memory" clobber (it would make the compiler reload everything it keeps from
// memory around each of the inner loops' loads): the tile it reads must have been written before a
// __syncthreads (a compiler barrier too), never by the same warp's plain stores just before it.
template <bool Trans>
__device__ __forceinline__ void ldsm_x4(uint32_t (&d)[4], const bf16* p) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(p));
#ifdef L2E_CUDA_EMULATION
  ::l2e::emu::ptx::ldmatrix_m8n8_b16(d, 4, Trans, addr);
#else
  if (Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(addr));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(d[0]), "=r"(d[1]), "=r"(d[2]), "=r"(d[3])
                 : "r"(addr));
#endif
}

// A (rows m0.., k0..) of a tile stored [m][k]: matrices (m0, k0) (m0+8, k0) (m0, k0+8) (m0+8, k0+8).
template <int C>
__device__ __forceinline__ void frag_a(uint32_t (&a)[4], const bf16* tile, int m0, int k0, int lane) {
  ldsm_x4<false>(a, tile + swz<C>(m0 + (lane & 15), k0 + (lane >> 4) * 8));
}

// A (rows m0.., k0..) of a tile stored [k][m] (the transpose): .trans of (k0, m0) (k0, m0+8)
// (k0+8, m0) (k0+8, m0+8).
template <int C>
__device__ __forceinline__ void frag_a_t(uint32_t (&a)[4], const bf16* tile, int m0, int k0, int lane) {
  ldsm_x4<true>(a, tile + swz<C>(k0 + (lane & 7) + (lane >> 4) * 8, m0 + ((lane >> 3) & 1) * 8));
}

// B of the two n-tiles n0, n0+8 (k in k0..k0+15) of a tile stored [n][k] (K when computing Q K^T):
// b[0], b[1] for n0, b[2], b[3] for n0+8; matrices (n0, k0) (n0, k0+8) (n0+8, k0) (n0+8, k0+8).
template <int C>
__device__ __forceinline__ void frag_b(uint32_t (&b)[4], const bf16* tile, int n0, int k0, int lane) {
  ldsm_x4<false>(b, tile + swz<C>(n0 + (lane & 7) + (lane >> 4) * 8, k0 + ((lane >> 3) & 1) * 8));
}

// The same from a tile stored [k][n] (V when computing P V): .trans of (k0, n0) (k0+8, n0)
// (k0, n0+8) (k0+8, n0+8).
template <int C>
__device__ __forceinline__ void frag_b_t(uint32_t (&b)[4], const bf16* tile, int n0, int k0, int lane) {
  ldsm_x4<true>(b, tile + swz<C>(k0 + (lane & 7) + ((lane >> 3) & 1) * 8, n0 + (lane >> 4) * 8));
}

// Issues (does not wait for) the copy of rows [row0, row0+rows) of a [*, stride] bf16 matrix,
// columns [0, C), into a swizzled tile; rows at or beyond `valid` are zero-filled without a read
// (their source address is row 0's, which exists). 16-byte cp.async per thread.
template <int C>
__device__ __forceinline__ void cp_tile(bf16* tile, const bf16* src, size_t stride, int row0, int rows, int valid,
                                        int tid, int nthreads) {
  constexpr int kChunks = C / 8;
  for (int i = tid; i < rows * kChunks; i += nthreads) {
    const int r = i / kChunks, c = (i % kChunks) * 8;
    const bool ok = row0 + r < valid;
    cp_async16(tile + swz<C>(r, c), src + size_t(ok ? row0 + r : 0) * stride + c, ok ? 16 : 0);
  }
}

}  // namespace cuda
}  // namespace l2e
