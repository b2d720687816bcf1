// Conversion of weight matrices to bf16 / int8 and back (layouts and rounding in core/lowp.h).
#include "core/lowp.h"

#include "core/host_memory.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace l2e {

const char* precision_name(Precision p) {
  switch (p) {
    case Precision::F32: return "fp32";
    case Precision::BF16: return "bf16";
    case Precision::Int8: return "int8";
  }
  return "?";
}

std::string lowp_cpu_only(const std::string& backend) {
  return backend + " backend: bf16 / int8 weights are CPU-only (load with precision 'fp32')";
}

Precision parse_precision(const std::string& s) {
  if (s == "fp32") return Precision::F32;
  if (s == "bf16") return Precision::BF16;
  if (s == "int8") return Precision::Int8;
  throw Error("unknown precision '" + s + "' (expected fp32, bf16 or int8)");
}

namespace {

void* alloc_zeroed(size_t bytes) {
  void* p = host_alloc(bytes, "converted weights");
  std::memset(p, 0, bytes);
  return p;
}

// x rounded to the nearest int in the current rounding mode (nearest, ties to even, by default), for x
// within int range: std::nearbyint's value. At the baseline x86-64 ISA nearbyint is a library call
// per value (542M of them in an int8 load of the 600M shape); cvtss2si is one instruction. (Not the
// add-and-subtract-1.5*2^23 trick: -ffp-contract=fast would fuse the caller's multiply into the add.)
int round_to_int(float x) {
#if defined(__SSE2__)
  return _mm_cvtss_si32(_mm_set_ss(x));
#else
  return int(std::nearbyint(x));
#endif
}

// Symmetric int8 of one row: returns the scale (NaN if the row holds NaN or infinity), writes q.
float quantize_row(const float* w, int64_t K, int8_t* q) {
  float amax = 0.0f;
  for (int64_t k = 0; k < K; k++) {
    if (!std::isfinite(w[k])) return std::nanf("");
    amax = std::max(amax, std::fabs(w[k]));
  }
  if (amax == 0.0f) {
    std::fill(q, q + K, int8_t(0));
    return 0.0f;
  }
  const float inv = 127.0f / amax;
  for (int64_t k = 0; k < K; k++) q[k] = int8_t(std::clamp(round_to_int(w[k] * inv), -127, 127));
  return amax / 127.0f;
}

}  // namespace

LowpMatrix::~LowpMatrix() {
  host_free(data, data_bytes());
  host_free(scale, size_t(N) * 4);
  host_free(colsum, size_t(slivers()) * kSliver * 4);
}

size_t LowpMatrix::data_bytes() const {
  const size_t esize = precision == Precision::BF16 ? 2 : 1;
  return layout == Layout::Gemm ? size_t(slivers()) * kSliver * size_t(Kg) * group() * esize : size_t(N) * size_t(K) * esize;
}

size_t LowpMatrix::bytes() const {
  size_t n = data_bytes();
  if (scale) n += size_t(N) * 4;
  if (colsum) n += size_t(slivers()) * kSliver * 4;
  return n;
}

void lowp_pack(LowpMatrix& m, Precision p, LowpMatrix::Layout layout, int64_t N, int64_t K,
               const std::function<void(int64_t, float*)>& row) {
  if (p == Precision::F32) throw Error("lowp_pack: fp32 weights are not converted");
  if (m.data) throw Error("lowp_pack: matrix already holds weights");
  // int8 sums |u q| <= 255 * 127 per k in int32 (cpu/gemm_int8.cpp): K must stay below 66,000
  if (p == Precision::Int8 && K > 66000)
    throw Error("int8: rows of " + std::to_string(K) + " values are too long for int32 sums (at most 66000)");
  m.precision = p;
  m.layout = layout;
  m.N = N;
  m.K = K;
  const int G = m.group();
  const bool gemm = layout == LowpMatrix::Layout::Gemm;
  m.Kg = gemm ? (K + G * kTileGroups - 1) / (G * kTileGroups) * kTileGroups : (K + G - 1) / G;
  const int64_t rows_alloc = gemm ? m.slivers() * kSliver : N;
  const int64_t cols_alloc = gemm ? m.Kg * G : K;
  const size_t esize = p == Precision::BF16 ? 2 : 1;
  m.data = alloc_zeroed(size_t(rows_alloc) * size_t(cols_alloc) * esize);  // = m.data_bytes()
  if (p == Precision::Int8) {
    m.scale = static_cast<float*>(alloc_zeroed(size_t(N) * 4));
    if (gemm) m.colsum = static_cast<int32_t*>(alloc_zeroed(size_t(rows_alloc) * 4));
  }
  std::vector<float> w(static_cast<size_t>(K));
  std::vector<int8_t> q(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; n++) {
    row(n, w.data());
    // Element k of row n goes to ((s Kg + k / G) kSliver + j) G + k % G in the Gemm layout (s, j: the
    // row's sliver and its place in it), to n K + k in the Rows one: walked G elements at a time, the
    // next group kSliver G further on (a division per element took 30% of a 600M int8 load: 2.6 -> 1.8 s).
    const int64_t s = n / kSliver, j = n % kSliver;
    const size_t first = gemm ? size_t((s * m.Kg * kSliver + j) * G) : size_t(n * K);
    const size_t stride = gemm ? size_t(kSliver) * size_t(G) : size_t(G);
    auto place = [&](auto* d, auto value) {
      size_t at = first;
      for (int64_t k0 = 0; k0 < K; k0 += G, at += stride) {
        const int64_t e = std::min<int64_t>(G, K - k0);
        for (int64_t i = 0; i < e; i++) d[at + size_t(i)] = value(k0 + i);
      }
    };
    if (p == Precision::BF16) {
      place(static_cast<uint16_t*>(m.data), [&](int64_t k) { return f32_to_bf16(w[size_t(k)]); });
    } else {
      m.scale[n] = quantize_row(w.data(), K, q.data());
      if (std::isnan(m.scale[n]))
        throw Error("row " + std::to_string(n) + " holds NaN or infinity, which int8 cannot represent (load in fp32 or bf16)");
      place(static_cast<int8_t*>(m.data), [&](int64_t k) { return q[size_t(k)]; });
      int32_t sum = 0;
      for (int64_t k = 0; k < K; k++) sum += q[size_t(k)];
      if (gemm) m.colsum[n] = sum;
    }
  }
}

void lowp_unpack_row(const LowpMatrix& m, int64_t n, float* out) {
  const int G = m.group();
  const bool gemm = m.layout == LowpMatrix::Layout::Gemm;
  const int64_t s = n / kSliver, j = n % kSliver;
  for (int64_t k = 0; k < m.K; k++) {
    const size_t i = gemm ? size_t(((s * m.Kg + k / G) * kSliver + j) * G + k % G) : size_t(n * m.K + k);
    out[k] = m.precision == Precision::BF16 ? bf16_to_f32(static_cast<const uint16_t*>(m.data)[i])
                                            : m.scale[n] * float(static_cast<const int8_t*>(m.data)[i]);
  }
}

}  // namespace l2e
