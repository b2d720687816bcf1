// AMX micro-kernels of the bf16 and int8 GEMMs (driver: gemm_lowp.cpp; operand layouts: gemm_lowp.h
// and core/lowp.h). The tile unit has eight 2-D registers tmm0..7 of up to 16 rows x 64 bytes,
// shaped by a 64-byte configuration (ldtilecfg; palette 1); here all eight are 16 rows x 64 bytes.
//   tdpbf16ps C, A, B: C[m][n] (fp32) += sum_{p<16} A[m][2p] B[p][2n] + A[m][2p+1] B[p][2n+1]
//     with A 16 rows of 16 bf16 pairs (one token, 32 consecutive k) and B 16 rows (k pairs) of
//     16 pairs (one per output channel): a sliver half's 16 k-groups as core/lowp.h stores them,
//     rows 128 bytes apart. Products of bf16 are exact in fp32 and the sums are fp32 (round to
//     nearest even, denormals flushed): the fp32 inner-product bound of gemm_bf16.cpp holds.
//   tdpbusd C, A, B: C[m][n] (int32) += sum_{p<16} sum_{e<4} u8(A[m][4p+e]) s8(B[p][4n+e]): the
//     vpdpbusd sum of gemm_int8.cpp over 64 k, exact in int32, so with the same epilogue (two fp32
//     roundings) the result equals the scalar reference bit for bit.
// One call computes a 32 x 32 block of C in four accumulator tiles (tmm0..3: rows 0-15 / 16-31 x
// columns 0-15 / 16-31) from two A tiles (tmm4, 5: rows 0-15, 16-31) and two B tiles (tmm6, 7:
// columns 0-15, 16-31) per 16 k-groups: 4 tile loads feed 4 tile multiplies (16 x 16 x 32 bf16 or
// 16 x 16 x 64 int8 multiply-adds each). A full block of C is loaded and stored in place; edges
// (mr or nr < 32) and the int8 epilogue go through a 32 x 32 buffer on the stack.
// Measured on the 2-core Xeon VM with AMX (one thread, thread CPU time, machine shared with others):
// the tile loop alone with operands in L1 640 GFLOP/s (bf16; 2.2-2.7 TFLOP/s on the quiet machine,
// 2026-12-01); linear_lowp at T = 512 on the 600M shapes 400-470 GFLOP/s (bf16) and 790-940 (int8),
// against 100-120 (bf16, widened to fp32 FMAs) and 300-400 (int8, vpdpbusd) at L2E_CPU_ISA=avx512 and
// ~105 for the fp32 sgemm in the same run.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "cpu/gemm.h"
#include "cpu/gemm_lowp.h"
#include "cpu/isa.h"

#if L2E_AMX_BUILT
#define L2E_AMX __attribute__((target("amx-tile,amx-bf16,amx-int8,avx512f,avx512bw")))

namespace l2e {
namespace lowp {
namespace {

static_assert(kAmxMR == 32 && kSliver == 32 && kTileGroups == 16, "the tile shapes below");
constexpr int64_t kRowBytes = 64;                   // a tile row: 16 fp32 / int32 / bf16 pairs / u8 quads
constexpr int64_t kBStride = kSliver * 4;           // bytes between a sliver's k-groups
constexpr int64_t kAChunk = kAmxMR * kTileGroups;   // uint32 words of x per 16 k-groups
constexpr int64_t kBufStride = kSliver * 4;         // bytes between rows of the stack buffer

// The configuration ldtilecfg reads (Intel SDM, "TILECFG"): palette, start row, then the bytes
// per row of tiles 0..15 (uint16 each, from byte 16) and their rows (from byte 48).
struct alignas(64) TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "ldtilecfg reads 64 bytes");

// C tiles 0..3 from / to the 32 x 32 block at p, rows `stride` bytes apart.
L2E_AMX void load_c(const void* p, int64_t stride) {
  const char* c = static_cast<const char*>(p);
  _tile_loadd(0, c, stride);
  _tile_loadd(1, c + kRowBytes, stride);
  _tile_loadd(2, c + 16 * stride, stride);
  _tile_loadd(3, c + 16 * stride + kRowBytes, stride);
}
L2E_AMX void store_c(void* p, int64_t stride) {
  char* c = static_cast<char*>(p);
  _tile_stored(0, c, stride);
  _tile_stored(1, c + kRowBytes, stride);
  _tile_stored(2, c + 16 * stride, stride);
  _tile_stored(3, c + 16 * stride + kRowBytes, stride);
}

// C tiles <- C (first: 0) for a block of mr x nr at c (the rest of buf zero when it is an edge).
L2E_AMX void begin_c(const float* c, int64_t ldc, int mr, int nr, bool first, float (*buf)[kSliver]) {
  if (first) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  } else if (mr == kAmxMR && nr == kSliver) {
    load_c(c, ldc * 4);
  } else {
    for (int i = 0; i < kAmxMR; i++)
      for (int j = 0; j < kSliver; j++) buf[i][j] = i < mr && j < nr ? c[i * ldc + j] : 0.0f;
    load_c(buf, kBufStride);
  }
}

// C <- C tiles, bit for bit (fp32 sums, or the int8 kernel's int32 sums between k blocks).
L2E_AMX void end_c(float* c, int64_t ldc, int mr, int nr, float (*buf)[kSliver]) {
  if (mr == kAmxMR && nr == kSliver) {
    store_c(c, ldc * 4);
    return;
  }
  store_c(buf, kBufStride);
  for (int i = 0; i < mr; i++) std::memcpy(c + i * ldc, buf[i], size_t(nr) * 4);
}

// kStream: the caller sweeps W slivers whole, one after the other (one tile of x: linear_lowp's
// streaming order), so W is one contiguous run read once from memory; each 2 KB step then asks for
// the run kStreamAheadBytes (gemm.h) on into L2 (a line a prefetch), which the tile loads alone do
// not: measured on the 2-core VM at T = 20, 10 GB/s of W per thread with it against 7 without (its
// plain-load stream rate: 10-11). Past the end of W the hints are dropped, as prefetches never fault.

template <bool kInt8, bool kStream>
L2E_AMX void multiply(int64_t kg, const uint32_t* a, const uint32_t* b) {
  for (int64_t g = 0; g < kg; g += kTileGroups, a += kAChunk, b += kTileGroups * kSliver) {
    if constexpr (kStream) {
      const char* ahead = reinterpret_cast<const char*>(b) + kStreamAheadBytes;
      for (int64_t l = 0; l < kTileGroups * kSliver * 4; l += 64) _mm_prefetch(ahead + l, _MM_HINT_T1);
    }
    _tile_loadd(4, a, kRowBytes);
    _tile_loadd(5, a + 16 * kTileGroups, kRowBytes);
    _tile_loadd(6, b, kBStride);
    _tile_loadd(7, b + 16, kBStride);
    if constexpr (kInt8) {
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    } else {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
}

// All eight tiles 16 rows x 64 bytes. A global, not a local: GCC's _tile_loadconfig tells the
// compiler it reads only the first 8 bytes, so it would drop the stores of a local's other fields.
constexpr TileConfig kTileConfig = {
    1, 0, {}, {kRowBytes, kRowBytes, kRowBytes, kRowBytes, kRowBytes, kRowBytes, kRowBytes, kRowBytes},
    {16, 16, 16, 16, 16, 16, 16, 16}};

}  // namespace

L2E_AMX void amx_begin() { _tile_loadconfig(&kTileConfig); }

L2E_AMX void amx_end() { _tile_release(); }

template <bool kStream>
L2E_AMX void bf16_amx(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                      bool first) {
  alignas(64) float buf[kAmxMR][kSliver];
  begin_c(c, ldc, mr, nr, first, buf);
  multiply<false, kStream>(kg, a, b);
  end_c(c, ldc, mr, nr, buf);
}

template <bool kStream>
L2E_AMX void int8_amx(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                      bool first, const Int8Epilogue* last) {
  alignas(64) float buf[kAmxMR][kSliver];
  begin_c(c, ldc, mr, nr, first, buf);
  multiply<true, kStream>(kg, a, b);
  if (!last) {
    end_c(c, ldc, mr, nr, buf);
    return;
  }
  // y = float(acc - 128 colsum[j]) * (a_scale[i] * w_scale[j]), as gemm_int8.cpp's kernels
  store_c(buf, kBufStride);
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1);
  const __mmask16 m1 = nr >= 32 ? __mmask16(0xFFFF) : nr > 16 ? __mmask16((1u << (nr - 16)) - 1) : __mmask16(0);
  const __m512i corr0 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m0, last->colsum), 7);
  const __m512i corr1 = _mm512_slli_epi32(_mm512_maskz_loadu_epi32(m1, last->colsum + 16), 7);
  const __m512 sw0 = _mm512_maskz_loadu_ps(m0, last->w_scale), sw1 = _mm512_maskz_loadu_ps(m1, last->w_scale + 16);
  for (int i = 0; i < mr; i++) {
    const __m512 sa = _mm512_set1_ps(last->a_scale[i]);
    const __m512i acc0 = _mm512_load_si512(buf[i]), acc1 = _mm512_load_si512(buf[i] + 16);
    const __m512 y0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc0, corr0)), _mm512_mul_ps(sa, sw0));
    const __m512 y1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc1, corr1)), _mm512_mul_ps(sa, sw1));
    _mm512_mask_storeu_ps(c + i * ldc, m0, y0);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, y1);
  }
}

L2E_AMX void micro_bf16_amx(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                    bool first) {
  bf16_amx<false>(kg, a, b, c, ldc, mr, nr, first);
}
L2E_AMX void micro_bf16_amx_stream(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr,
                           int nr, bool first) {
  bf16_amx<true>(kg, a, b, c, ldc, mr, nr, first);
}
L2E_AMX void micro_int8_amx(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                    bool first, const Int8Epilogue* last) {
  int8_amx<false>(kg, a, b, c, ldc, mr, nr, first, last);
}
L2E_AMX void micro_int8_amx_stream(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr,
                           int nr, bool first, const Int8Epilogue* last) {
  int8_amx<true>(kg, a, b, c, ldc, mr, nr, first, last);
}

}  // namespace lowp
}  // namespace l2e

#else  // no AMX intrinsics in this compiler: the probe reports no AMX, so these are never called

namespace l2e {
namespace lowp {
void amx_begin() {}
void amx_end() {}
void micro_bf16_amx(int64_t, const uint32_t*, const uint32_t*, float*, int64_t, int, int, bool) {}
void micro_int8_amx(int64_t, const uint32_t*, const uint32_t*, float*, int64_t, int, int, bool, const Int8Epilogue*) {}
void micro_bf16_amx_stream(int64_t, const uint32_t*, const uint32_t*, float*, int64_t, int, int, bool) {}
void micro_int8_amx_stream(int64_t, const uint32_t*, const uint32_t*, float*, int64_t, int, int, bool,
                           const Int8Epilogue*) {}
}  // namespace lowp
}  // namespace l2e

#endif
