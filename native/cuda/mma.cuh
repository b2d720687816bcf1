// bf16 tensor-core building blocks for the flash-attention kernels (sm_80+): mma.sync m16n8k16 with
// fp32 accumulators, and loads of its operand fragments from shared-memory tiles.
//
// Fragment layout (PTX ISA, mma.m16n8k16 .bf16; g = lane / 4, t = lane % 4; each .b32 register holds
// two bf16, the lower column / row index in the low half):
//   A (16x16, row-major) a0: (g, 2t..2t+1)   a1: (g+8, 2t..)   a2: (g, 2t+8..)   a3: (g+8, 2t+8..)
//   B (16x8, k x n)      b0: (k = 2t..2t+1, n = g)             b1: (k = 2t+8..2t+9, n = g)
//   C (16x8, fp32)       c0, c1: (g, 2t..2t+1)                 c2, c3: (g+8, 2t..2t+1)
// So the C tiles of two neighbouring n-tiles (16 x 16 columns) are exactly an A fragment once packed
// to bf16: that is how P = softmax(S) feeds P V without a trip through shared memory.
#pragma once
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

__device__ __forceinline__ uint32_t ld_pair(const bf16* p) { return *reinterpret_cast<const uint32_t*>(p); }

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<uint32_t*>(&v);
}

// A fragment of rows [r0, r0+16), columns [k0, k0+16) of a row-major tile with row stride ld.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* tile, int ld, int r0, int k0, int lane) {
  const int g = lane >> 2, t = lane & 3;
  const bf16* p = tile + (r0 + g) * ld + k0 + 2 * t;
  a[0] = ld_pair(p);
  a[1] = ld_pair(p + 8 * ld);
  a[2] = ld_pair(p + 8);
  a[3] = ld_pair(p + 8 * ld + 8);
}

// B fragment (k in [k0, k0+16), n in [n0, n0+8)) of B[k][n] = tile[n][k]: the tile is stored with
// n as its row (K when computing Q K^T), so each register is two neighbours of one row.
__device__ __forceinline__ void load_b_nk(uint32_t& b0, uint32_t& b1, const bf16* tile, int ld, int n0, int k0,
                                          int lane) {
  const int g = lane >> 2, t = lane & 3;
  const bf16* p = tile + (n0 + g) * ld + k0 + 2 * t;
  b0 = ld_pair(p);
  b1 = ld_pair(p + 8);
}

// B fragments of two n-tiles (n0 and n0+8), k in [k0, k0+16), of B[k][n] = tile[k][n] (the tile is
// stored with k as its row: V when computing P V). ldmatrix.trans transposes the 8x8 blocks:
// matrix m (lanes 8m..8m+7 give its row addresses) is rows k0 + (m&1)*8 .., columns n0 + (m>>1)*8 ..
// and lands in register m. Rows must be 16-byte aligned (ld and n0 multiples of 8).
__device__ __forceinline__ void load_b_kn_x2(uint32_t (&b)[4], const bf16* tile, int ld, int k0, int n0,
                                             int lane) {
  const bf16* p = tile + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + n0 + (lane >> 4) * 8;
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(p));
#ifdef L2E_CUDA_EMULATION
  ::l2e::emu::ptx::ldmatrix_m8n8_b16(b, 4, true, addr);
#else
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3])
               : "r"(addr));
#endif
}

// Copies rows [row0, row0+rows) of a [*, stride] bf16 matrix (columns [col0, col0+D)) into a
// row-major smem tile with row stride ld; rows at or beyond `valid` are zero-filled. 16-byte copies.
template <int D>
__device__ __forceinline__ void load_tile(bf16* tile, int ld, const bf16* src, size_t stride, int row0, int rows,
                                          int valid, int tid, int nthreads) {
  constexpr int kVec = D / 8;  // uint4 per row
  for (int c = tid; c < rows * kVec; c += nthreads) {
    const int r = c / kVec, col = (c % kVec) * 8;
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (row0 + r < valid) v = *reinterpret_cast<const uint4*>(src + size_t(row0 + r) * stride + col);
    *reinterpret_cast<uint4*>(tile + r * ld + col) = v;
  }
}

}  // namespace cuda
}  // namespace l2e
