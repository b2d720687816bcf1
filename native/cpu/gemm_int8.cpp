// int8 GEMM micro-kernels (driver: gemm_lowp.cpp) and the per-token quantisation of activations.
// The math, for one output y[t,n] = sum_k x[t,k] W[n,k]:
//   weights (core/lowp.h), per output channel: W[n,k] ≈ sw[n] q[n,k], q in [-127, 127] (s8);
//   activations, per token (quantize_token): x[t,k] ≈ sa[t] p[t,k], p in [-127, 127], stored
//   offset by 128 as u8: u[t,k] = p[t,k] + 128 in [1, 255], because vpdpbusd multiplies an
//   unsigned byte by a signed one: acc[j] += sum_{e<4} u8(a[4j+e]) * s8(b[4j+e]) (int32).
//   sum_k u q = sum_k p q + 128 sum_k q[n,k] = sum_k p q + 128 colsum[n], so
//   y[t,n] ≈ sa[t] sw[n] (acc - 128 colsum[n]),
// computed in the epilogue as float(acc - 128 colsum[n]) * (sa[t] * sw[n]). The int32 sums are
// exact: |u q| <= 255 * 127, so |acc| <= K * 32385 < 2^31 for K < 66,000 (the 4-byte vpdpbusd
// sum cannot overflow either), and padding (k >= K) has q = 0. Every kernel computes the same
// int32 and the same two fp32 roundings, so all agree with the scalar reference bit for bit.
//   avx512_vnni: 14 x 32 tile in 28 zmm accumulators (12, 10, 8, 6 or 4 rows for a short x).
//   avx_vnni (VEX, 256-bit; CPUs with AVX-VNNI but no AVX-512): 6 x 32 as two 6 x 16 halves.
//   scalar: the reference, plain C++ over a 4 x 32 tile.
//   amx (gemm_amx.cpp, picked at the amx level of cpu/isa.h): 32 x 32 blocks with tdpbusd.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cpu/gemm_lowp.h"
#include "cpu/isa.h"

namespace l2e {
namespace lowp {

namespace {

// The same numbers with AVX-512: the product x[k] * inv rounded to the nearest int32, ties to even
// (vcvtps2dq in the default rounding mode, as nearbyint), clamped, offset, narrowed to bytes.
__attribute__((target("avx512f,avx512bw"))) float quantize_token_avx512(const float* x, int64_t K, uint8_t* q) {
  const __m512i abs_bits = _mm512_set1_epi32(0x7fffffff);
  const __m512 inf = _mm512_set1_ps(INFINITY);
  __m512 amax = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1);
    const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + k)), abs_bits));
    bad |= _mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ);  // infinity or NaN
    amax = _mm512_max_ps(amax, a);
  }
  const float top = _mm512_reduce_max_ps(amax);
  if (bad || top == 0.0f) {
    std::memset(q, 128, size_t(K));
    return bad ? std::nanf("") : 0.0f;
  }
  const __m512 inv = _mm512_set1_ps(127.0f / top);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), offset = _mm512_set1_epi32(128);
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = K - k >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (K - k)) - 1);
    const __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), inv));
    const __m512i u = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(r, lo), hi), offset);
    _mm512_mask_cvtepi32_storeu_epi8(q + k, m, u);
  }
  return top / 127.0f;
}

float quantize_token_scalar(const float* x, int64_t K, uint8_t* q) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t k = 0; k < K; k++) {
    finite = finite && std::isfinite(x[k]);
    amax = std::max(amax, std::fabs(x[k]));
  }
  if (!finite) {
    std::memset(q, 128, size_t(K));
    return std::nanf("");
  }
  if (amax == 0.0f) {
    std::memset(q, 128, size_t(K));
    return 0.0f;
  }
  const float inv = 127.0f / amax;
  for (int64_t k = 0; k < K; k++)
    q[k] = uint8_t(int(std::clamp(std::nearbyint(x[k] * inv), -127.0f, 127.0f)) + 128);
  return amax / 127.0f;
}

}  // namespace

float quantize_token(const float* x, int64_t K, uint8_t* q) {
  static const bool simd = cpu::cpu_features().avx512_bw;
  return simd ? quantize_token_avx512(x, K, q) : quantize_token_scalar(x, K, q);
}

namespace {

inline int32_t dot4(uint32_t u, uint32_t s) {
  int32_t sum = 0;
  for (int e = 0; e < 4; e++) sum += int32_t((u >> (8 * e)) & 0xffu) * int32_t(int8_t((s >> (8 * e)) & 0xffu));
  return sum;
}

inline int32_t as_i32(float f) {
  int32_t i;
  std::memcpy(&i, &f, 4);
  return i;
}
inline float as_f32(int32_t i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}

// Scalar epilogue / store of one element; the SIMD kernels do the same two roundings.
inline float dequant(int32_t acc, int32_t colsum, float sa, float sw) {
  return float(acc - 128 * colsum) * (sa * sw);
}

constexpr int kScalarMR = 4;

void micro_int8_scalar(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                       bool first, const Int8Epilogue* last) {
  int32_t acc[kScalarMR][kSliver];
  for (int i = 0; i < kScalarMR; i++)
    for (int j = 0; j < kSliver; j++) acc[i][j] = (first || i >= mr || j >= nr) ? 0 : as_i32(c[i * ldc + j]);
  for (int64_t g = 0; g < kg; g++, a += kScalarMR, b += kSliver)
    for (int i = 0; i < kScalarMR; i++)
      for (int j = 0; j < kSliver; j++) acc[i][j] += dot4(a[i], b[j]);
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++)
      c[i * ldc + j] = last ? dequant(acc[i][j], last->colsum[j], last->a_scale[i], last->w_scale[j]) : as_f32(acc[i][j]);
}

constexpr int kZmmMR = 14;

// MR rows (the 14 of the kernel, or fewer for a short x: see kAvx512 below).
template <int MR>
__attribute__((target("avx512f,avx512vnni"))) void micro_int8_avx512(int64_t kg, const uint32_t* a,
                                                                     const uint32_t* b, float* c, int64_t ldc,
                                                                     int mr, int nr, bool first,
                                                                     const Int8Epilogue* last) {
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0);
  // The sums start at zero and the earlier k blocks' sums (C, when not first) are added after the
  // loop: integer addition, so the same int32 either way. Loaded into the sums before the loop,
  // GCC 12 kept part of them on the stack (24 stack loads and stores every k group, at half the
  // speed); so only the 28 sums, the two W vectors and the broadcast x word are live in it (31 zmm).
  __m512i acc[MR][2];
#pragma GCC unroll 14
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  for (int64_t g = 0; g < kg; g++, a += MR, b += kSliver) {
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kSliver), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 8 * kSliver + 16), _MM_HINT_T0);
    const __m512i b0 = _mm512_load_si512(b), b1 = _mm512_load_si512(b + 16);
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      const __m512i ai = _mm512_set1_epi32(int(a[i]));
      acc[i][0] = _mm512_dpbusd_epi32(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbusd_epi32(acc[i][1], ai, b1);
    }
  }
  if (!first) {
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      if (i < mr) {
        acc[i][0] = _mm512_add_epi32(acc[i][0], _mm512_maskz_loadu_epi32(m0, c + i * ldc));
        acc[i][1] = _mm512_add_epi32(acc[i][1], _mm512_maskz_loadu_epi32(m1, c + i * ldc + 16));
      }
    }
  }
  if (!last) {
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
      if (i < mr) {
        _mm512_mask_storeu_epi32(c + i * ldc, m0, acc[i][0]);
        _mm512_mask_storeu_epi32(c + i * ldc + 16, m1, acc[i][1]);
      }
    }
    return;
  }
  const __m512i corr0 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m0, last->colsum), 7);
  const __m512i corr1 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m1, last->colsum + 16), 7);
  const __m512 sw0 = _mm512_maskz_loadu_ps(m0, last->w_scale), sw1 = _mm512_maskz_loadu_ps(m1, last->w_scale + 16);
#pragma GCC unroll 14
  for (int i = 0; i < MR; i++) {
    if (i < mr) {
      const __m512 sa = _mm512_set1_ps(last->a_scale[i]);
      const __m512 y0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][0], corr0)), _mm512_mul_ps(sa, sw0));
      const __m512 y1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][1], corr1)), _mm512_mul_ps(sa, sw1));
      _mm512_mask_storeu_ps(c + i * ldc, m0, y0);
      _mm512_mask_storeu_ps(c + i * ldc + 16, m1, y1);
    }
  }
}

constexpr int kYmmMR = 6;

// One 6 x 16 half (columns h*16 .. h*16+15) of the 6 x 32 tile, on a full 16-column block held in
// t (row stride 32): the AVX-VNNI kernel works on a local tile so edges need no masked stores.
__attribute__((target("avx2,fma,avxvnni"))) void half_avxvnni(int64_t kg, const uint32_t* a, const uint32_t* b,
                                                              int32_t* t) {
  __m256i acc[kYmmMR][2];
#pragma GCC unroll 6
  for (int i = 0; i < kYmmMR; i++) {
    acc[i][0] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + i * kSliver));
    acc[i][1] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + i * kSliver + 8));
  }
  for (int64_t g = 0; g < kg; g++, a += kYmmMR, b += kSliver) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 8));
#pragma GCC unroll 6
    for (int i = 0; i < kYmmMR; i++) {
      const __m256i ai = _mm256_set1_epi32(int(a[i]));
      acc[i][0] = _mm256_dpbusd_avx_epi32(acc[i][0], ai, b0);
      acc[i][1] = _mm256_dpbusd_avx_epi32(acc[i][1], ai, b1);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < kYmmMR; i++) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + i * kSliver), acc[i][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + i * kSliver + 8), acc[i][1]);
  }
}

void micro_int8_avxvnni(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                        bool first, const Int8Epilogue* last) {
  alignas(64) int32_t t[kYmmMR][kSliver];
  for (int i = 0; i < kYmmMR; i++)
    for (int j = 0; j < kSliver; j++) t[i][j] = (first || i >= mr || j >= nr) ? 0 : as_i32(c[i * ldc + j]);
  half_avxvnni(kg, a, b, &t[0][0]);
  if (nr > 16) half_avxvnni(kg, a, b + 16, &t[0][16]);
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nr; j++)
      c[i * ldc + j] = last ? dequant(t[i][j], last->colsum[j], last->a_scale[i], last->w_scale[j]) : as_f32(t[i][j]);
}

const Int8Kernel kScalar{"scalar", kScalarMR, micro_int8_scalar};
const Int8Kernel kAvxVnni{"avx2", kYmmMR, micro_int8_avxvnni};
// The AVX-512 kernel on 14 rows, with its instances on 12, 10, 8, 6 and 4 for a short x
// (gemm_lowp.h narrower): 20 tokens as two tiles of 10, not 14 + 6, which computes 28 rows for 20.
const Int8Kernel kAvx512r4{"avx512", 4, micro_int8_avx512<4>};
const Int8Kernel kAvx512r6{"avx512", 6, micro_int8_avx512<6>, false, nullptr, &kAvx512r4};
const Int8Kernel kAvx512r8{"avx512", 8, micro_int8_avx512<8>, false, nullptr, &kAvx512r6};
const Int8Kernel kAvx512r10{"avx512", 10, micro_int8_avx512<10>, false, nullptr, &kAvx512r8};
const Int8Kernel kAvx512r12{"avx512", 12, micro_int8_avx512<12>, false, nullptr, &kAvx512r10};
const Int8Kernel kAvx512{"avx512", kZmmMR, micro_int8_avx512<kZmmMR>, false, nullptr, &kAvx512r12};
const Int8Kernel kAmx{"amx", kAmxMR, micro_int8_amx, true, micro_int8_amx_stream};  // gemm_amx.cpp

// Through the one ISA switch (cpu/isa.h): a kernel runs when the level in use allows its features.
bool supported(const Int8Kernel& k) {
  const cpu::CpuFeatures& f = cpu::cpu_features();
  if (&k == &kAmx) return f.amx_int8;
  if (&k == &kAvx512) return f.avx512 && f.avx512_vnni;
  if (&k == &kAvxVnni) return f.avx2 && f.avx_vnni;
  return true;
}

}  // namespace

const Int8Kernel* int8_kernel(const char* name) {
  for (const Int8Kernel* k : {&kScalar, &kAvxVnni, &kAvx512, &kAmx})
    if (std::strcmp(k->name, name) == 0) return supported(*k) ? k : nullptr;
  return nullptr;
}

const Int8Kernel& pick_int8_kernel() {
  // The widest kernel the ISA level allows (AVX-VNNI under avx2, or where AVX-512 lacks VNNI).
  static const Int8Kernel* chosen = supported(kAmx)       ? &kAmx
                                    : supported(kAvx512)  ? &kAvx512
                                    : supported(kAvxVnni) ? &kAvxVnni
                                                          : &kScalar;
  return *chosen;
}

}  // namespace lowp
}  // namespace l2e
