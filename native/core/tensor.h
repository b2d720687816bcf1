// Buffers that the op table passes around. A Buf is memory owned by one backend (host memory on the
// CPU, device memory on CUDA); the model code never dereferences it, only the backend's ops do.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace l2e {

// U16: raw 16-bit words (the low halves of F32 master weights, core/master_halves.h).
enum class DType : int { F32 = 0, F16 = 1, BF16 = 2, I32 = 3, U16 = 4 };

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::I32: return 4;
    case DType::U16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I32: return "I32";
    case DType::U16: return "U16";
  }
  return "?";
}

struct Buf {
  void* ptr = nullptr;
  size_t numel = 0;
  DType dtype = DType::F32;
  size_t bytes() const { return numel * dtype_size(dtype); }
  bool empty() const { return ptr == nullptr; }
  float* f32() const { return static_cast<float*>(ptr); }
  int32_t* i32() const { return static_cast<int32_t*>(ptr); }
};

// Every error raised by native code: the addon turns it into a JS Error with this message.
struct Error : std::runtime_error {
  explicit Error(const std::string& m) : std::runtime_error(m) {}
};

// float <-> half/bfloat16 conversions on the host (round to nearest even).
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

}  // namespace l2e
