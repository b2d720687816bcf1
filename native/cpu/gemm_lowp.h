// GEMM on reduced-precision weights (core/lowp.h Gemm layout): y[T,N] = x[T,K] W[N,K]^T, x and y
// fp32. bf16 (gemm_bf16.cpp): either x is rounded to bf16 too and multiplied with vdpbf16ps, or x
// stays fp32 and the bf16 weights are widened in registers for fp32 FMAs (picked by default where
// vdpbf16ps is no faster than two FMAs: see gemm_bf16.cpp). int8: x is quantised per token to u8
// and multiplied with vpdpbusd into int32 accumulators, dequantised to fp32 at the end
// (gemm_int8.cpp, which has the math).
// Micro-kernels are chosen at run time (pick_bf16_kernel / pick_int8_kernel), each with a scalar
// reference that tests compare against.
#pragma once
#include <cstdint>

#include "core/lowp.h"

namespace l2e {
namespace lowp {

// One register tile C[mr, nr] (row stride ldc; mr <= MR, nr <= 32) over kg k-groups of packed
// operands: a = [kg][MR] uint32 (one k-group of one row each: 2 bf16 or 4 u8, row i of the tile
// at [g*MR + i]) or, for bf16 kernels with fp32 x, [kg][2][MR] float (x[i][2g+e] at
// [(2g+e)*MR + i]); b = [kg][32] uint32 (one sliver of W). Rows mr..MR-1 of a are zero padding.
//   bf16: C = (first ? 0 : C) + a b
//   int8: acc = (first ? 0 : C as int32 bits) + a b; when last, C = float(acc - 128 colsum[j])
//         * (a_scale[i] * w_scale[j]), else C keeps acc as int32 bits (the k blocks in between).
struct Int8Epilogue {
  const float* a_scale;  // [mr] per-token scales of the tile's rows
  const float* w_scale;  // [nr] per-channel scales of the tile's columns
  const int32_t* colsum; // [nr]
};
using Bf16Micro = void (*)(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr,
                           int nr, bool first);
using Int8Micro = void (*)(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr,
                           int nr, bool first, const Int8Epilogue* last);

// AMX kernels (gemm_amx.cpp; amx = true) take a in tile rows instead: [kg / 16][MR][16] uint32, the
// 16 k-groups of a tile side by side for each row (MR = kAmxMR = 32: two A tiles of 16 rows), and
// their thread must have loaded the tile configuration (amx_begin) before and release it after
// (amx_end); the driver does both around each task.
// `stream`, where a kernel has one: the same product for a caller that sweeps W slivers whole and in
// order (linear_lowp with one tile of x), which prefetches W ahead (gemm_amx.cpp).
struct Bf16Kernel {
  const char* name;
  int mr;
  Bf16Micro micro;
  bool x_bf16;  // x rounded to bf16 (vdpbf16ps, tdpbf16ps); else x stays fp32
  bool amx = false;
  Bf16Micro stream = nullptr;
  const Bf16Kernel* narrower = nullptr;  // as Int8Kernel's
};
struct Int8Kernel {
  const char* name;
  int mr;
  Int8Micro micro;
  bool amx = false;
  Int8Micro stream = nullptr;
  // The same kernel on tiles of fewer rows (same results): linear_lowp takes the narrowest that
  // cuts x into no more tiles, so a short x computes fewer padding rows.
  const Int8Kernel* narrower = nullptr;
};

constexpr int kAmxMR = 32;
void micro_bf16_amx(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                    bool first);
void micro_int8_amx(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr, int nr,
                    bool first, const Int8Epilogue* last);
void micro_bf16_amx_stream(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr,
                           int nr, bool first);
void micro_int8_amx_stream(int64_t kg, const uint32_t* a, const uint32_t* b, float* c, int64_t ldc, int mr,
                           int nr, bool first, const Int8Epilogue* last);
void amx_begin();
void amx_end();

// Every kernel compiled in, and whether this CPU runs it (index 0 is the scalar reference).
const Bf16Kernel* bf16_kernel(const char* name);  // nullptr if unknown or unsupported here
const Int8Kernel* int8_kernel(const char* name);
// The kernel linear_lowp uses: the widest one the ISA level in use allows (cpu/isa.h, so
// L2E_CPU_ISA=scalar|avx2|avx512|amx moves it with every other kernel). Named kernels above the level
// read as unsupported too.
const Bf16Kernel& pick_bf16_kernel();
const Int8Kernel& pick_int8_kernel();

// y[T, W.N] = x[T, W.K] W^T (no bias). kernel_name forces a micro-kernel (tests); nullptr picks.
void linear_lowp(const float* x, int64_t T, const LowpMatrix& W, float* y, const char* kernel_name = nullptr);

// Per-token quantisation of one row (shared by every int8 kernel, so their results agree exactly):
// scale = max|x| / 127, q[k] = round(x[k] / scale) + 128 in [1, 255]; a zero row has scale 0 and
// q = 128; a row with NaN or infinity gets scale NaN (its outputs are NaN).
float quantize_token(const float* x, int64_t K, uint8_t* q);

}  // namespace lowp
}  // namespace l2e
