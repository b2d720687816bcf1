// AVX2 + FMA sgemm micro-kernel: a 6 x 16 tile held in 12 ymm accumulators; each k step loads two
// vectors of packed B and broadcasts six values of packed A (15 of the 16 ymm registers).
#include <immintrin.h>

#include "cpu/gemm_kernels.h"

namespace l2e {
namespace gemm {
namespace {

constexpr int MR = 6, NR = 16;

__attribute__((target("avx2,fma"))) void micro_avx2(int64_t kc, const float* a, const float* b,
                                                    float* c, int64_t ldc, int mr, int nr,
                                                    float alpha, float beta) {
  // Start pulling the C tile in now so the write-back at the end does not stall on it.
  for (int i = 0; i < mr; i++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
  }
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; k++, a += MR, b += NR) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR), _MM_HINT_T0);  // packed data, in order
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
      const __m256 ai = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (mr == MR && nr == NR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
      float* row = c + i * ldc;
      __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
      if (beta != 0.0f) {
        r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), r0);
        r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), r1);
      }
      _mm256_storeu_ps(row, r0);
      _mm256_storeu_ps(row + 8, r1);
    }
    return;
  }
  // Edge tile: spill the tile and write back only its valid corner.
  alignas(32) float tile[MR][NR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; i++) {
    _mm256_store_ps(tile[i], _mm256_mul_ps(va, acc[i][0]));
    _mm256_store_ps(tile[i] + 8, _mm256_mul_ps(va, acc[i][1]));
  }
  for (int i = 0; i < mr; i++) {
    float* row = c + i * ldc;
    for (int j = 0; j < nr; j++) row[j] = beta == 0.0f ? tile[i][j] : tile[i][j] + beta * row[j];
  }
}

}  // namespace

const KernelInfo& avx2_kernel() {
  static const KernelInfo info{"avx2", MR, NR, 256, 120, 4096, micro_avx2, nullptr, nullptr};
  return info;
}

}  // namespace gemm
}  // namespace l2e
