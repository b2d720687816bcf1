// CUDA emulation build: __nv_bfloat16 with the hardware's conversions. bf16 is the upper half of an
// IEEE binary32; float -> bf16 rounds to nearest, ties to even (cvt.rn.bf16.f32, PTX ISA "cvt"),
// and a NaN stays a NaN (quiet, sign kept) instead of rounding into infinity.
#pragma once
#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
  uint16_t __x;
};
struct __nv_bfloat162 {
  __nv_bfloat16 x, y;  // x: the low 16 bits of the 32-bit pair
};

inline float __bfloat162float(__nv_bfloat16 h) {
  const uint32_t u = uint32_t(h.__x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  __nv_bfloat16 h;
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    h.__x = uint16_t((u >> 16) | 0x0040u);  // NaN: keep sign and top payload, force quiet
    return h;
  }
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even (overflow carries into inf)
  h.__x = uint16_t(u >> 16);
  return h;
}

inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return __nv_bfloat162{__float2bfloat16_rn(lo), __float2bfloat16_rn(hi)};
}
