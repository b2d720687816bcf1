// bf16 GEMM micro-kernels (driver: gemm_lowp.cpp). Each k-group is a pair of consecutive k, packed
// as two bf16 in one uint32 (low half = even k). vdpbf16ps adds, per fp32 lane j,
//   acc[j] += a.lo * b[j].lo + a.hi * b[j].hi
// with exact bf16 x bf16 products (8-bit significands) and fp32 sums (round to nearest even,
// denormals flushed). So the only error beyond the bf16 rounding of x and W is that of a K-term
// fp32 sum: |C - sum_k a_k b_k| <= gamma_K sum_k |a_k b_k|, gamma_K = K u / (1 - K u), u = 2^-24,
// the bound test/precision-kernels.test.ts checks every kernel against.
//   avx512_bf16: 14 x 32 tile, 28 zmm accumulators, the A pair broadcast from memory.
//   scalar: the reference, plain C++ over a 4 x 32 tile (any CPU).
// CPUs without AVX512_BF16 run the scalar kernel (no AVX2 emulation yet).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/tensor.h"
#include "cpu/gemm_lowp.h"

namespace l2e {
namespace lowp {
namespace {

inline float lo(uint32_t p) { return bf16_to_f32(uint16_t(p & 0xffffu)); }
inline float hi(uint32_t p) { return bf16_to_f32(uint16_t(p >> 16)); }

constexpr int kScalarMR = 4;

void micro_bf16_scalar(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                       bool first) {
  float acc[kScalarMR][kSliver];
  for (int i = 0; i < kScalarMR; i++)
    for (int j = 0; j < kSliver; j++) acc[i][j] = (first || i >= mr || j >= nr) ? 0.0f : c[i * ldc + j];
  for (int64_t g = 0; g < kg; g++, a += kScalarMR, b += kSliver)
    for (int i = 0; i < kScalarMR; i++) {
      const float a0 = lo(a[i]), a1 = hi(a[i]);
      for (int j = 0; j < kSliver; j++) acc[i][j] = acc[i][j] + a0 * lo(b[j]) + a1 * hi(b[j]);
    }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) c[i * ldc + j] = acc[i][j];
}

constexpr int kZmmMR = 14;

__attribute__((target("avx512f,avx512bf16"))) void micro_bf16_avx512(int64_t kg, const uint32_t* a,
                                                                     const uint32_t* b, float* c, int64_t ldc,
                                                                     int mr, int nr, bool first) {
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0);
  __m512 acc[kZmmMR][2];
#pragma GCC unroll 14
  for (int i = 0; i < kZmmMR; i++) {
    if (first || i >= mr) {
      acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    } else {
      acc[i][0] = _mm512_maskz_loadu_ps(m0, c + i * ldc);
      acc[i][1] = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
    }
  }
  for (int64_t g = 0; g < kg; g++, a += kZmmMR, b += kSliver) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kSliver), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kSliver + 16), _MM_HINT_T0);
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < kZmmMR; i++) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(a[i]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
  }
#pragma GCC unroll 14
  for (int i = 0; i < kZmmMR; i++) {
    if (i >= mr) break;
    _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
  }
}

const Bf16Kernel kScalar{"scalar", kScalarMR, micro_bf16_scalar};
const Bf16Kernel kAvx512{"avx512", kZmmMR, micro_bf16_avx512};

bool supported(const Bf16Kernel& k) {
  __builtin_cpu_init();
  if (&k == &kAvx512) return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  return true;
}

}  // namespace

const Bf16Kernel* bf16_kernel(const char* name) {
  for (const Bf16Kernel* k : {&kScalar, &kAvx512})
    if (std::strcmp(k->name, name) == 0) return supported(*k) ? k : nullptr;
  return nullptr;
}

const Bf16Kernel& pick_bf16_kernel() {
  // TODO(isa): route through the CPU ISA module at merge. L2E_CPU_ISA = scalar | avx2 | avx512 caps
  // the instruction set; bf16 has no AVX2 kernel, so avx2 runs the scalar one.
  static const Bf16Kernel* chosen = [] {
    const char* isa = std::getenv("L2E_CPU_ISA");
    const std::string cap = isa ? isa : "";
    if (cap == "scalar" || cap == "avx2") return &kScalar;
    return supported(kAvx512) ? &kAvx512 : &kScalar;
  }();
  return *chosen;
}

}  // namespace lowp
}  // namespace l2e
