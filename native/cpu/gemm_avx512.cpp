// AVX-512 sgemm micro-kernel: a 14 x 32 tile held in 28 zmm accumulators; each k step loads two
// vectors of packed B and broadcasts fourteen values of packed A (31 of the 32 zmm registers).
// Edge columns are written with masked loads/stores, so no tile is ever spilled.
// GCC 12's avx512fintrin.h initialises its "undefined" vectors from themselves (`__m512 __Y = __Y`),
// which -Wall reports as maybe-uninitialized in every caller; the value is never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/gemm.h"
#include "cpu/gemm_kernels.h"

namespace l2e {
namespace gemm {
namespace {

constexpr int MR = 14, NR = 32;
constexpr int kPrefetchK = 8;

// The tile's first R rows (R = mr rounded up to what the kernel computes: a band's last tile of 6
// rows costs 6 rows of FMAs, not 14). kStream: B is one contiguous run swept in order (gemm.cpp's
// streaming order), so each k step also asks for the run kStreamAheadBytes (gemm.h) on into L2.

template <int R, bool kStream>
__attribute__((target("avx512f"))) void micro_rows(int64_t kc, const float* a, const float* b, float* c, int64_t ldc,
                                                   int mr, int nr, float alpha, float beta) {
  // Start pulling the C tile in now so the write-back at the end does not stall on it.
#pragma GCC unroll 14
  for (int i = 0; i < R; i++) {
    if (i >= mr) break;
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }
  __m512 acc[R][2];
#pragma GCC unroll 14
  for (int i = 0; i < R; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; k++, a += MR, b += NR) {
    // Packed slivers are read strictly in order: ask for them a few k steps ahead.
    _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchK * NR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + kPrefetchK * NR + 16), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(a + kPrefetchK * MR), _MM_HINT_T0);
    if constexpr (kStream) {
      _mm_prefetch(reinterpret_cast<const char*>(b) + kStreamAheadBytes, _MM_HINT_T1);
      _mm_prefetch(reinterpret_cast<const char*>(b + 16) + kStreamAheadBytes, _MM_HINT_T1);
    }
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < R; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF)
                       : nr > 16 ? __mmask16((1u << (nr - 16)) - 1)
                                 : __mmask16(0);
#pragma GCC unroll 14
  for (int i = 0; i < R; i++) {
    if (i >= mr) break;
    float* row = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
    if (beta != 0.0f) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), r1);
    }
    _mm512_mask_storeu_ps(row, m0, r0);
    _mm512_mask_storeu_ps(row + 16, m1, r1);
  }
}

// Edge tiles run a kernel of 2, 4, 7 or 10 rows (the fewest that cover mr), full ones all 14.
template <bool kStream>
void micro_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr, int nr, float alpha,
                  float beta) {
  if (mr <= 2) return micro_rows<2, kStream>(kc, a, b, c, ldc, mr, nr, alpha, beta);
  if (mr <= 4) return micro_rows<4, kStream>(kc, a, b, c, ldc, mr, nr, alpha, beta);
  if (mr <= 7) return micro_rows<7, kStream>(kc, a, b, c, ldc, mr, nr, alpha, beta);
  if (mr <= 10) return micro_rows<10, kStream>(kc, a, b, c, ldc, mr, nr, alpha, beta);
  micro_rows<MR, kStream>(kc, a, b, c, ldc, mr, nr, alpha, beta);
}

// In-register transpose of a 16 x 16 block: r[i] holds row i; afterwards r[j] holds column j.
__attribute__((target("avx512f"))) inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {  // pairs of rows interleaved within each 128-bit lane
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int g = 0; g < 16; g += 4) {  // u[g + c], lane L: rows g..g+3 of column 4L + c
    const __m512d t0 = _mm512_castps_pd(t[g]), t1 = _mm512_castps_pd(t[g + 1]);
    const __m512d t2 = _mm512_castps_pd(t[g + 2]), t3 = _mm512_castps_pd(t[g + 3]);
    u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; c++) {  // 4 x 4 transpose of 128-bit lanes across u[c], u[4+c], u[8+c], u[12+c]
    const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44), v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44), v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
    r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[4 + c] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[8 + c] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[12 + c] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

// dst[k][i] = src[i*ld + k] for i < n, zero for n <= i < W: 16 source rows at a time are loaded
// 16 k wide, transposed in registers and stored as 16 consecutive k rows of the sliver.
__attribute__((target("avx512f"))) void pack_transpose_avx512(const float* src, int64_t ld, int n,
                                                               int64_t kc, int W, float* dst) {
  for (int i0 = 0; i0 < W; i0 += 16) {
    const int rows = n - i0 < 0 ? 0 : (n - i0 > 16 ? 16 : n - i0);
    const int lanes = W - i0 > 16 ? 16 : W - i0;
    const __mmask16 lane_mask = __mmask16((1u << lanes) - 1);
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      const int ks = kc - k0 > 16 ? 16 : int(kc - k0);
      const __mmask16 k_mask = __mmask16((1u << ks) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; i++) {
        if (i < rows) {
          const float* row = src + (i0 + i) * ld + k0;
          _mm_prefetch(reinterpret_cast<const char*>(row + 64), _MM_HINT_T0);
          r[i] = _mm512_maskz_loadu_ps(k_mask, row);
        } else {
          r[i] = _mm512_setzero_ps();
        }
      }
      transpose16(r);
      for (int k = 0; k < ks; k++) _mm512_mask_storeu_ps(dst + (k0 + k) * W + i0, lane_mask, r[k]);
    }
  }
}

// dst[k][j] = src[k*ld + j] for j < n, zero for n <= j < W.
__attribute__((target("avx512f"))) void pack_copy_avx512(const float* src, int64_t ld, int n,
                                                         int64_t kc, int W, float* dst) {
  for (int j0 = 0; j0 < W; j0 += 16) {
    const int cols = n - j0 < 0 ? 0 : (n - j0 > 16 ? 16 : n - j0);
    const int lanes = W - j0 > 16 ? 16 : W - j0;
    const __mmask16 col_mask = __mmask16((1u << cols) - 1), lane_mask = __mmask16((1u << lanes) - 1);
    for (int64_t k = 0; k < kc; k++)
      _mm512_mask_storeu_ps(dst + k * W + j0, lane_mask, _mm512_maskz_loadu_ps(col_mask, src + k * ld + j0));
  }
}

}  // namespace

const KernelInfo& avx512_kernel() {
    // kc 512: a 64 KB B sliver (L1/L2) and fewer passes over C; mc 224: a 448 KB A block in the
  // 1 MB L2 (measured on Zen 5; 256..512 x 112..336 were all within a few percent).
  static const KernelInfo info{"avx512",         MR, NR, 512, 224, 4096, micro_avx512<false>, pack_transpose_avx512,
                               pack_copy_avx512, micro_avx512<true>};
  return info;
}

}  // namespace gemm
}  // namespace l2e
