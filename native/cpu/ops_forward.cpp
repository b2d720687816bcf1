// CPU forward kernels (everything but attention, which has its own file). fp32 in the backend,
// double in the gradient checks. Row-parallel over tokens with parallel_for.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace l2e {
namespace cpu {

// Rows per parallel task so that tiny batches don't pay the thread hand-off.
static int64_t row_grain(int64_t width) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, width)); }

template <typename S>
void embedding_fwd(const int32_t* ids, int T, const S* table, int H, S* out) {
  // out[t,:] = table[ids[t],:]   (ids were range-checked when the batch was built)
  parallel_for(T, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; t++) std::memcpy(out + t * H, table + int64_t(ids[t]) * H, sizeof(S) * H);
  }, row_grain(H));
}

template <typename S>
void rmsnorm_fwd(const S* x, const S* w, int T, int H, float eps, S* y, S* rstd) {
  // y = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps); the mean of squares is accumulated in double
  // (transformers computes it in fp32 via torch's pairwise sum; double keeps us closer to its float64 run).
  parallel_for(T, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; t++) {
      const S* xr = x + t * H;
      double ss = 0;
      for (int i = 0; i < H; i++) ss += double(xr[i]) * double(xr[i]);
      const S r = S(1.0 / std::sqrt(ss / H + double(eps)));
      rstd[t] = r;
      S* yr = y + t * H;
      for (int i = 0; i < H; i++) yr[i] = w[i] * (xr[i] * r);
    }
  }, row_grain(H));
}

// y starts as the bias rows (the product is then added onto them); returns the GEMM's beta.
static float bias_rows(const float* bias, int T, int N, float* y) {
  if (!bias) return 0.0f;
  for (int64_t t = 0; t < T; t++) std::memcpy(y + t * N, bias, sizeof(float) * N);
  return 1.0f;
}

template <>
void linear_fwd<float>(const float* x, const float* W, const float* bias, int T, int K, int N, float* y) {
  // y[T,N] = x[T,K] W[N,K]^T : A = x (no transpose), B = W^T (W stored [N,K] -> transB)
  const float beta = bias_rows(bias, T, N, y);
  sgemm(false, true, T, N, K, 1.0f, x, K, W, K, beta, y, N);
}

void linear_packed_fwd(const float* x, const float* Wp, const float* bias, int T, int K, int N, float* y) {
  const float beta = bias_rows(bias, T, N, y);
  sgemm_packed_weights(T, N, K, x, K, Wp, beta, y, N);
}

template <>
void linear_fwd<double>(const double* x, const double* W, const double* bias, int T, int K, int N, double* y) {
  // reference path for the double-precision gradient checks: plain dot products
  parallel_for(T, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; t++)
      for (int n = 0; n < N; n++) {
        double s = bias ? bias[n] : 0.0;
        for (int k = 0; k < K; k++) s += x[t * K + k] * W[int64_t(n) * K + k];
        y[t * N + n] = s;
      }
  });
}

void rope_inv_freq(int hd, float theta, float* inv_freq) {
  // transformers: 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)), in float32
  for (int i = 0; i < hd / 2; i++) {
    const float expo = float(2 * i) / float(hd);
    inv_freq[i] = 1.0f / std::pow(theta, expo);
  }
}

template <typename S>
void rope_fwd(S* x, const int32_t* positions, int T, int heads, int hd, float theta, float sign) {
  // HF rotate-half: for i < hd/2, with a = pos * inv_freq[i] (computed in float32 as transformers does),
  //   x'[i]        = x[i] cos a - x[i+hd/2] sin a
  //   x'[i+hd/2]   = x[i+hd/2] cos a + x[i] sin a
  // sign = -1 rotates by -a (the transpose), which is the backward pass.
  const int half = hd / 2;
  std::vector<float> inv(half);
  rope_inv_freq(hd, theta, inv.data());
  parallel_for(T, [&](int64_t b, int64_t e, int) {
    std::vector<S> c(half), s(half);
    for (int64_t t = b; t < e; t++) {
      for (int i = 0; i < half; i++) {
        const float a = float(positions[t]) * inv[i];  // float32 product, like transformers
        c[i] = S(std::cos(double(a)));
        s[i] = S(sign) * S(std::sin(double(a)));
      }
      S* row = x + t * int64_t(heads) * hd;
      for (int h = 0; h < heads; h++) {
        S* xh = row + int64_t(h) * hd;
        for (int i = 0; i < half; i++) {
          const S x1 = xh[i], x2 = xh[i + half];
          xh[i] = x1 * c[i] - x2 * s[i];
          xh[i + half] = x2 * c[i] + x1 * s[i];
        }
      }
    }
  }, 4);
}

template <typename S>
static S silu(S g) {
  return g / (S(1) + std::exp(-g));
}

template <typename S>
void swiglu_fwd(const S* gate, const S* up, int64_t n, S* out) {
  // out = silu(gate) * up; fp32 at the avx512 level: swiglu_avx512.cpp (its own e^x, within 2 ulp)
  if constexpr (std::is_same_v<S, float>) {
    static const bool vec = isa_allows(Isa::avx512);
    if (vec) {
      parallel_for(n, [&](int64_t b, int64_t e, int) { swiglu_avx512(gate + b, up + b, e - b, out + b); }, 16384);
      return;
    }
  }
  parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; i++) out[i] = silu(gate[i]) * up[i];
  }, 16384);
}

template <typename S>
void pool_fwd(const S* x, const int32_t* cu, int B, int P, int mode, S* out) {
  // mean: out[b] = (1/len_b) sum_{t in seq b} x[t];  cls: out[b] = x[first token of b]
  parallel_for(B, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t s = cu[b], e = cu[b + 1];
      S* o = out + b * P;
      if (e <= s) {  // empty sequence: nothing to pool, zeros rather than a read past its end
        std::fill(o, o + P, S(0));
        continue;
      }
      if (mode == 1 || e - s == 1) {
        std::memcpy(o, x + s * P, sizeof(S) * P);
        continue;
      }
      std::vector<double> acc(P, 0.0);
      for (int64_t t = s; t < e; t++)
        for (int p = 0; p < P; p++) acc[p] += double(x[t * P + p]);
      const double inv = 1.0 / double(e - s);
      for (int p = 0; p < P; p++) o[p] = S(acc[p] * inv);
    }
  });
}

template <typename S>
void l2norm_fwd(const S* x, int B, int P, bool normalize, S* y, S* norm) {
  // y = x / max(||x||, 1e-12)  (torch.nn.functional.normalize)
  for (int b = 0; b < B; b++) {
    const S* xr = x + int64_t(b) * P;
    S* yr = y + int64_t(b) * P;
    if (!normalize) {
      std::memcpy(yr, xr, sizeof(S) * P);
      norm[b] = S(1);
      continue;
    }
    double ss = 0;
    for (int p = 0; p < P; p++) ss += double(xr[p]) * double(xr[p]);
    const double nrm = std::max(std::sqrt(ss), 1e-12);
    norm[b] = S(nrm);
    for (int p = 0; p < P; p++) yr[p] = S(double(xr[p]) / nrm);
  }
}

#define L2E_INSTANTIATE_FWD(S)                                                                  \
  template void embedding_fwd<S>(const int32_t*, int, const S*, int, S*);                       \
  template void rmsnorm_fwd<S>(const S*, const S*, int, int, float, S*, S*);                    \
  template void rope_fwd<S>(S*, const int32_t*, int, int, int, float, float);                   \
  template void swiglu_fwd<S>(const S*, const S*, int64_t, S*);                                 \
  template void pool_fwd<S>(const S*, const int32_t*, int, int, int, S*);                       \
  template void l2norm_fwd<S>(const S*, int, int, bool, S*, S*);
L2E_INSTANTIATE_FWD(float)
L2E_INSTANTIATE_FWD(double)

}  // namespace cpu
}  // namespace l2e
