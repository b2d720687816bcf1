// F32 master weights held as two 16-bit halves (the CUDA backend's training state, 4 bytes a
// parameter instead of a 4-byte master beside the 2-byte bf16 weights the forward reads):
//   hi = the master rounded to bf16, to nearest with ties away from zero (IEEE 754 roundTiesToAway)
//        — the parameter buffer itself, what every GEMM reads;
//   lo = the low 16 bits of the master's bit pattern.
// The master comes back exactly. Let M be its magnitude bits (31 of them) and t = M >> 16 (the
// truncation). Rounding to nearest in magnitude goes up exactly when lo >= 0x8000 (half an ulp of
// bf16 or more; ties go up, away from zero), so hi's magnitude is t + (lo >= 0x8000) — an integer
// step in bit patterns, which crosses into the next binade (or to infinity) as rounding does — and
//   M = ((hi's magnitude - (lo >= 0x8000)) << 16) | lo,   the sign is hi's.
// Why not ties to even (what f32_to_bf16 and __float2bfloat16_rn do): at lo = 0x8000 the even
// neighbour may be t or t + 1, and 16 bits cannot say which; ties away from zero differ from ties to
// even only there (1 in 2^16 values), by one bf16 ulp of the forward's copy, never in the master.
// NaN masters stay NaN in both halves (the quiet bit set in hi); their payload may not come back.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define L2E_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define L2E_HOST_DEVICE inline
#endif

namespace l2e {

// The bf16 half (bits) of an F32 master given as its bits.
L2E_HOST_DEVICE uint16_t master_hi(uint32_t bits) {
  const uint32_t mag = bits & 0x7fffffffu, sign = (bits >> 16) & 0x8000u;
  if (mag > 0x7f800000u) return uint16_t(sign | (mag >> 16) | 0x40u);  // NaN
  return uint16_t(sign | ((mag >> 16) + ((mag & 0xffffu) >= 0x8000u ? 1u : 0u)));
}

// The low half of an F32 master given as its bits.
L2E_HOST_DEVICE uint16_t master_lo(uint32_t bits) { return uint16_t(bits & 0xffffu); }

// The F32 master's bits from its halves.
L2E_HOST_DEVICE uint32_t master_bits(uint16_t hi, uint16_t lo) {
  const uint32_t sign = uint32_t(hi & 0x8000u) << 16;
  const uint32_t t = (uint32_t(hi & 0x7fffu) - (lo >= 0x8000u ? 1u : 0u)) & 0x7fffu;
  return sign | (t << 16) | lo;
}

}  // namespace l2e
