// Reduced-precision weights for CPU inference (EmbeddingModel.load(dir, { precision })).
// A model loaded in bf16 or int8 converts every weight matrix once, as it is loaded, and holds it
// only in that form (the fp32 copy is never kept); norms and the dense bias stay fp32. Training
// needs fp32 weights and refuses such a model.
//
// Two layouts of a matrix W[N,K] (row n = output channel n, as nn.Linear stores it):
//   Gemm (projections): packed once for the GEMM kernels (cpu/gemm_lowp.h) as slivers of
//     kSliver = 32 output channels; sliver s holds, for each group g of G consecutive k
//     (G = 2 for bf16, 4 for int8), the 32 channels' G values side by side:
//       data[((s * Kg + g) * 32 + j) * G + e] = W[32 s + j, G g + e]
//     so one 64-byte load is what vdpbf16ps / vpdpbusd take, and 16 groups of 16 channels, rows
//     128 bytes apart, are an AMX B tile (tdpbf16ps / tdpbusd). Kg = ceil(K / G) rounded up to
//     kTileGroups = 16, so every sliver holds whole tiles. Channels >= N and k >= K are zero.
//   Rows (embedding table): row-major [N][K], gathered one row at a time.
// bf16: round to nearest even, NaN kept (core/tensor.h f32_to_bf16).
// int8: symmetric per output channel: scale[n] = max_k |W[n,k]| / 127, q = round(W / scale) in
//   [-127, 127] (a zero row has scale 0 and q = 0), W ≈ scale[n] q[n,k]. Gemm layout also keeps
//   colsum[n] = sum_k q[n,k], the offset correction of the u8 activations (cpu/gemm_int8.cpp).
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "core/tensor.h"

namespace l2e {

enum class Precision : int { F32 = 0, BF16 = 1, Int8 = 2 };
const char* precision_name(Precision p);  // "fp32", "bf16", "int8"
// "fp32" | "bf16" | "int8"; anything else throws Error naming the accepted values.
Precision parse_precision(const std::string& s);
// The error of a backend without reduced-precision ops (every backend but the CPU's).
std::string lowp_cpu_only(const std::string& backend);

constexpr int kSliver = 32;
constexpr int kTileGroups = 16;  // k groups per AMX tile: Kg is a multiple of it

struct LowpMatrix {
  enum class Layout { Gemm, Rows };
  Precision precision = Precision::BF16;
  Layout layout = Layout::Gemm;
  int64_t N = 0, K = 0;
  int64_t Kg = 0;            // Gemm: k groups per sliver (a multiple of kTileGroups)
  void* data = nullptr;      // uint16_t bf16 bits or int8_t, 64-byte aligned
  float* scale = nullptr;    // int8: [N]
  int32_t* colsum = nullptr; // int8 Gemm: [ceil(N/32)*32], zero past N

  LowpMatrix() = default;
  LowpMatrix(const LowpMatrix&) = delete;
  LowpMatrix& operator=(const LowpMatrix&) = delete;
  ~LowpMatrix();
  int group() const { return precision == Precision::BF16 ? 2 : 4; }
  int64_t slivers() const { return (N + kSliver - 1) / kSliver; }
  size_t bytes() const;       // resident bytes of data + scale + colsum
  size_t data_bytes() const;  // bytes of data alone (as allocated)
};

// Converts W[N,K] row by row: row(n, out) writes row n as K floats. Throws Error for F32 precision.
void lowp_pack(LowpMatrix& m, Precision p, LowpMatrix::Layout layout, int64_t N, int64_t K,
               const std::function<void(int64_t n, float* out)>& row);
// Row n of the stored (rounded / quantised) matrix as K floats.
void lowp_unpack_row(const LowpMatrix& m, int64_t n, float* out);

}  // namespace l2e
