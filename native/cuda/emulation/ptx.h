// CUDA emulation build: the inline-PTX instructions the kernels use, as warp-synchronous functions
// (ptx.cpp). Written from the PTX ISA, not from the kernels:
//   mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32  (PTX ISA, "Warp-level Matrix Multiply-
//     Accumulate Instructions: mma", fragments: "Matrix Fragments for mma.m16n8k16 with floating
//     point type")
//   ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{,.trans}.shared.b16  (PTX ISA, "Warp-level matrix load
//     instruction: ldmatrix")
//   ex2.approx.ftz.f32  (PTX ISA, "Floating Point Instructions: ex2")
#pragma once
#include <cstdint>

namespace l2e {
namespace emu {
namespace ptx {

// d = a b + c over the warp: A 16x16 (row), B 16x8 (col), C and D 16x8 fp32; this lane's fragments.
void mma_m16n8k16_bf16_f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]);

// count (1, 2 or 4) 8x8 b16 matrices; `addr` is this lane's row address in the shared window.
void ldmatrix_m8n8_b16(uint32_t* d, int count, bool trans, unsigned addr);

// 2^a, one lane (no warp meeting): .ftz flushes a subnormal input and a subnormal result to
// sign-preserving zero; -Inf gives +0, +Inf +Inf, NaN NaN. The GPU's result is an approximation (the
// ISA bounds its error: 2 ulp); this is the correctly rounded value, or under L2E_CUDA_EMULATE_MATH=worst
// one 2 ulp off it (approx_math.h).
float ex2_approx_ftz_f32(float a);

}  // namespace ptx
}  // namespace emu
}  // namespace l2e
