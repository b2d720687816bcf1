// Portable sgemm micro-kernel: plain C++ over a 4 x 8 tile, for CPUs without AVX2 (and as the
// reference the SIMD kernels are tested against). The compiler may still vectorise it with SSE2.
#include "cpu/gemm_kernels.h"

namespace l2e {
namespace gemm {
namespace {

constexpr int MR = 4, NR = 8;

void micro_scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr, int nr,
                  float alpha, float beta) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; k++, a += MR, b += NR)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < mr; i++) {
    float* row = c + i * ldc;
    for (int j = 0; j < nr; j++)
      row[j] = beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * row[j];
  }
}

}  // namespace

const KernelInfo& scalar_kernel() {
  static const KernelInfo info{"scalar", MR, NR, 256, 128, 4096, micro_scalar, nullptr, nullptr};
  return info;
}

}  // namespace gemm
}  // namespace l2e
