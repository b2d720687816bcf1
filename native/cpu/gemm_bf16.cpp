// bf16 GEMM micro-kernels (driver: gemm_lowp.cpp). W is bf16, packed as pairs of consecutive k in
// one uint32 (low half = even k). Two ways to multiply:
//   x rounded to bf16 too ("avx512bf16"): vdpbf16ps adds, per fp32 lane j,
//     acc[j] += a.lo * b[j].lo + a.hi * b[j].hi
//   with exact bf16 x bf16 products and fp32 sums (round to nearest even, denormals flushed).
//   x kept fp32 ("avx512", "avx2", "scalar"): each bf16 weight is widened to fp32 in a register (a
//   16-bit shift, or a mask for the high halves: exact) and multiplied with fp32 FMAs.
// Either way the error beyond the rounding of W (and of x for vdpbf16ps) is that of a K-term fp32
// inner product, |C - sum_k a_k b_k| <= gamma_K sum_k |a_k b_k|, gamma_K = K u / (1 - K u),
// u = 2^-24: the bound test/precision-kernels.test.ts checks every kernel against.
// Measured on the 2-core Xeon (AVX-512 BF16, best of 2000 calls of one 14 x 32 tile, one core):
// vdpbf16ps reaches 80 GFLOP/s where fp32 FMA reaches 150 (it issues at half the FMA rate there),
// so there the widening kernel, ~ the fp32 rate at half the weight bytes and with x unrounded, is
// the default below the amx level. On AMD (cpu/isa.h bf16_dot_full_rate; measured on Zen 5) vdpbf16ps
// issues at the FMA's rate, twice its flops: on the 2-core EPYC (Zen 5) a loop of independent
// vdpbf16ps ran 458 GFLOP/s on one core against FMA's 229, and op/linear_lowp/h4096-bf16 (T=512 x
// 4096 x 11008) 611 GFLOP/s against the widening kernel's 386, so there the vdpbf16ps kernel is
// picked (x rounded to bf16, as the AMX kernel rounds it). With AMX (cpu/isa.h level amx) the tile
// kernel of gemm_amx.cpp is picked: it rounds x to bf16 too, and multiplies 32 x 32 blocks with
// tdpbf16ps.
//   avx512: 14 x 32 tile, 28 zmm accumulators (12, 10, 8, 6 or 4 rows for a short x); avx512bf16:
//   the same tiles with vdpbf16ps;
//   avx2: 6 x 32 as two 6 x 16 halves in 12 ymm accumulators; scalar: the reference, 4 x 32.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/tensor.h"
#include "cpu/gemm_lowp.h"
#include "cpu/isa.h"

namespace l2e {
namespace lowp {
namespace {

inline float lo(uint32_t p) { return bf16_to_f32(uint16_t(p & 0xffffu)); }
inline float hi(uint32_t p) { return bf16_to_f32(uint16_t(p >> 16)); }

constexpr int kScalarMR = 4;

// x fp32: a = [kg][2][MR] float.
void micro_bf16_scalar(int64_t kg, const uint32_t* a32, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                       bool first) {
  const float* a = reinterpret_cast<const float*>(a32);
  float acc[kScalarMR][kSliver];
  for (int i = 0; i < kScalarMR; i++)
    for (int j = 0; j < kSliver; j++) acc[i][j] = (first || i >= mr || j >= nr) ? 0.0f : c[i * ldc + j];
  for (int64_t g = 0; g < kg; g++, a += 2 * kScalarMR, b += kSliver)
    for (int i = 0; i < kScalarMR; i++) {
      const float a0 = a[i], a1 = a[kScalarMR + i];
      for (int j = 0; j < kSliver; j++) acc[i][j] = acc[i][j] + a0 * lo(b[j]) + a1 * hi(b[j]);
    }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) c[i * ldc + j] = acc[i][j];
}

constexpr int kYmmMR = 6;

// One 6 x 16 half of the 6 x 32 tile held in t (row stride 32), x fp32: a = [kg][2][6] float.
__attribute__((target("avx2,fma"))) void half_bf16_avx2(int64_t kg, const float* a, const uint32_t* b, float* t) {
  __m256 acc[kYmmMR][2];
#pragma GCC unroll 6
  for (int i = 0; i < kYmmMR; i++) {
    acc[i][0] = _mm256_loadu_ps(t + i * kSliver);
    acc[i][1] = _mm256_loadu_ps(t + i * kSliver + 8);
  }
  const __m256i high = _mm256_set1_epi32(int(0xffff0000u));
  for (int64_t g = 0; g < kg; g++, a += 2 * kYmmMR, b += kSliver) {
    const __m256i r0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i r1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 8));
    const __m256 e0 = _mm256_castsi256_ps(_mm256_slli_epi32(r0, 16)), e1 = _mm256_castsi256_ps(_mm256_slli_epi32(r1, 16));
    const __m256 o0 = _mm256_castsi256_ps(_mm256_and_si256(r0, high)), o1 = _mm256_castsi256_ps(_mm256_and_si256(r1, high));
#pragma GCC unroll 6
    for (int i = 0; i < kYmmMR; i++) {
      const __m256 ae = _mm256_broadcast_ss(a + i), ao = _mm256_broadcast_ss(a + kYmmMR + i);
      acc[i][0] = _mm256_fmadd_ps(ae, e0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ae, e1, acc[i][1]);
      acc[i][0] = _mm256_fmadd_ps(ao, o0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ao, o1, acc[i][1]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kYmmMR; i++) {
    _mm256_storeu_ps(t + i * kSliver, acc[i][0]);
    _mm256_storeu_ps(t + i * kSliver + 8, acc[i][1]);
  }
}

void micro_bf16_avx2(int64_t kg, const uint32_t* a32, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                     bool first) {
  const float* a = reinterpret_cast<const float*>(a32);
  alignas(64) float t[kYmmMR][kSliver];
  for (int i = 0; i < kYmmMR; i++)
    for (int j = 0; j < kSliver; j++) t[i][j] = (first || i >= mr || j >= nr) ? 0.0f : c[i * ldc + j];
  half_bf16_avx2(kg, a, b, &t[0][0]);
  if (nr > 16) half_bf16_avx2(kg, a, b + 16, &t[0][16]);
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++) c[i * ldc + j] = t[i][j];
}

constexpr int kZmmMR = 14;

// The AVX-512 kernels' C tile: mr x nr of C (ldc apart) in MR x 2 zmm accumulators of 16 columns,
// nr's columns as two lane masks. load: zeros where first (or past mr), else C's values; store: the
// mr rows back, the masked-off lanes untouched.
template <int MR>
struct Tile512 {
  float* c;
  int64_t ldc;
  int mr;
  __mmask16 m0, m1;
  Tile512(float* c_, int64_t ldc_, int mr_, int nr)
      : c(c_), ldc(ldc_), mr(mr_),
        m0(nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1)),
        m1(nr >= 32 ? __mmask16(0xFFFF) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0)) {}
  __attribute__((target("avx512f"), always_inline)) inline void load(__m512 (&acc)[MR][2], bool first) const {
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      if (first || i >= mr) {
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
      } else {
        acc[i][0] = _mm512_maskz_loadu_ps(m0, c + i * ldc);
        acc[i][1] = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
      }
    }
  }
  __attribute__((target("avx512f"), always_inline)) inline void store(const __m512 (&acc)[MR][2]) const {
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      if (i >= mr) break;
      _mm512_mask_storeu_ps(c + i * ldc, m0, acc[i][0]);
      _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc[i][1]);
    }
  }
};

template <int MR>
__attribute__((target("avx512f,avx512bf16"))) void micro_bf16_avx512(int64_t kg, const uint32_t* a,
                                                                     const uint32_t* b, float* c, int64_t ldc,
                                                                     int mr, int nr, bool first) {
  const Tile512<MR> t(c, ldc, mr, nr);
  __m512 acc[MR][2];
  t.load(acc, first);
  for (int64_t g = 0; g < kg; g++, a += MR, b += kSliver) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kSliver), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kSliver + 16), _MM_HINT_T0);
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = (__m512bh)_mm512_load_si512(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(a[i]));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
  }
  t.store(acc);
}

// x fp32: a = [kg][2][MR] float. Even-k weights: the pair shifted left 16; odd: the pair with its
// low half cleared (a masked 16-bit load).
template <int MR>
__attribute__((target("avx512f,avx512bw"))) void micro_bf16w_avx512(int64_t kg, const uint32_t* a32,
                                                                    const uint32_t* b, float* c, int64_t ldc,
                                                                    int mr, int nr, bool first) {
  const float* a = reinterpret_cast<const float*>(a32);
  const Tile512<MR> t(c, ldc, mr, nr);
  __m512 acc[MR][2];
  t.load(acc, first);
  const __mmask32 odd = 0xAAAAAAAAu;
  for (int64_t g = 0; g < kg; g++, a += 2 * MR, b += kSliver) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kSliver), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kSliver + 16), _MM_HINT_T0);
    const __m512 e0 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_load_si512(b), 16));
    const __m512 e1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_load_si512(b + 16), 16));
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, e0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, e1, acc[i][1]);
    }
    const __m512 o0 = _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(odd, b));
    const __m512 o1 = _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(odd, b + 16));
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      const __m512 ai = _mm512_set1_ps(a[MR + i]);
      acc[i][0] = _mm512_fmadd_ps(ai, o0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, o1, acc[i][1]);
    }
  }
  t.store(acc);
}

const Bf16Kernel kScalar{"scalar", kScalarMR, micro_bf16_scalar, false};
const Bf16Kernel kAvx2{"avx2", kYmmMR, micro_bf16_avx2, false};
// Each AVX-512 kernel on 14 rows, with its instances on 12, 10, 8, 6 and 4 for a short x
// (gemm_lowp.h narrower): 20 tokens as two tiles of 10, not 14 + 6.
template <bool XBf16, int MR>
constexpr Bf16Micro kMicro512 = XBf16 ? micro_bf16_avx512<MR> : micro_bf16w_avx512<MR>;
template <bool XBf16>
struct Avx512Rows {
  static constexpr const char* name = XBf16 ? "avx512bf16" : "avx512";
  static constexpr Bf16Kernel r4{name, 4, kMicro512<XBf16, 4>, XBf16};
  static constexpr Bf16Kernel r6{name, 6, kMicro512<XBf16, 6>, XBf16, false, nullptr, &r4};
  static constexpr Bf16Kernel r8{name, 8, kMicro512<XBf16, 8>, XBf16, false, nullptr, &r6};
  static constexpr Bf16Kernel r10{name, 10, kMicro512<XBf16, 10>, XBf16, false, nullptr, &r8};
  static constexpr Bf16Kernel r12{name, 12, kMicro512<XBf16, 12>, XBf16, false, nullptr, &r10};
  static constexpr Bf16Kernel r14{name, kZmmMR, kMicro512<XBf16, kZmmMR>, XBf16, false, nullptr, &r12};
};
const Bf16Kernel& kAvx512 = Avx512Rows<false>::r14;
const Bf16Kernel& kAvx512Bf16 = Avx512Rows<true>::r14;
const Bf16Kernel kAmx{"amx", kAmxMR, micro_bf16_amx, true, true, micro_bf16_amx_stream};  // gemm_amx.cpp

// Through the one ISA switch (cpu/isa.h): a kernel runs when the level in use allows its features.
bool supported(const Bf16Kernel& k) {
  const cpu::CpuFeatures& f = cpu::cpu_features();
  if (&k == &kAmx) return f.amx_bf16;
  if (&k == &kAvx512Bf16) return f.avx512 && f.avx512_bf16;
  if (&k == &kAvx512) return f.avx512 && f.avx512_bw;
  if (&k == &kAvx2) return f.avx2;
  return true;
}

}  // namespace

const Bf16Kernel* bf16_kernel(const char* name) {
  for (const Bf16Kernel* k : {&kScalar, &kAvx2, &kAvx512, &kAvx512Bf16, &kAmx})
    if (std::strcmp(k->name, name) == 0) return supported(*k) ? k : nullptr;
  return nullptr;
}

const Bf16Kernel& pick_bf16_kernel() {
  // The widest kernel the ISA level allows; the vdpbf16ps kernel only where it runs at the FMA's
  // rate (see the header).
  static const Bf16Kernel* chosen = supported(kAmx) ? &kAmx
                                    : supported(kAvx512Bf16) && cpu::cpu_features().bf16_dot_full_rate
                                        ? &kAvx512Bf16
                                    : supported(kAvx512) ? &kAvx512
                                    : supported(kAvx2)   ? &kAvx2
                                                         : &kScalar;
  return *chosen;
}

}  // namespace lowp
}  // namespace l2e
