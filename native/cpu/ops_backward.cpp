// CPU backward kernels (attention has its own file). fp32 in the backend, double in the gradient
// checks. Each kernel is threaded over an axis on which no two workers write the same output element:
// rows for per-row outputs, columns for outputs reduced over tokens (dW, dtable, dbias).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace l2e {
namespace cpu {

namespace {
// Rows (or columns) per parallel task so that tiny shapes don't pay the thread hand-off.
int64_t grain_for(int64_t width) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, width)); }
}  // namespace

// Embedding: out[t,:] = table[ids[t],:], so dtable[r,:] += sum_{t: ids[t]=r} dout[t,:].
// Repeated ids make token-parallelism racy, so each worker owns a slice of the H columns and walks
// every token.
template <typename S>
void embedding_bwd(const int32_t* ids, int T, const S* dout, int H, S* dtable) {
  parallel_for(H, [&](int64_t c0, int64_t c1, int) {
    for (int64_t t = 0; t < T; t++) {
      const S* g = dout + t * H;          // [H]
      S* d = dtable + int64_t(ids[t]) * H;  // [H]
      for (int64_t c = c0; c < c1; c++) d[c] += g[c];
    }
  }, 64);
}

// RMSNorm: y_i = w_i x_i r, r = (mean_j x_j^2 + eps)^(-1/2), dr/dx_i = -r^3 x_i / H. With g_i = w_i dy_i:
//   dx_i = r g_i - (r^3 / H) x_i sum_j g_j x_j
//   dw_i (+)= sum_t dy_ti x_ti r_t
// dx is row-parallel; dw (a reduction over tokens) is column-parallel. dx may alias dy.
template <typename S>
void rmsnorm_bwd(const S* x, const S* w, const S* rstd, const S* dy, int T, int H, S* dx, S* dw,
                 bool accumulate_dx, bool accumulate_dw) {
  // dw first: then dx may overwrite dy in place (each dx row reads its dy row before writing it)
  parallel_for(H, [&](int64_t c0, int64_t c1, int) {
    if (!accumulate_dw) std::fill(dw + c0, dw + c1, S(0));  // the sums start from +0 either way
    for (int64_t t = 0; t < T; t++) {
      const S* xr = x + t * H;
      const S* gr = dy + t * H;
      const S r = rstd[t];
      for (int64_t c = c0; c < c1; c++) dw[c] += gr[c] * xr[c] * r;
    }
  }, 64);
  parallel_for(T, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; t++) {
      const S* xr = x + t * H;    // [H]
      const S* gr = dy + t * H;   // [H]
      S* dxr = dx + t * H;        // [H]
      const S r = rstd[t];
      double dot = 0;  // sum_j w_j dy_j x_j, accumulated in double like the forward's mean of squares
      for (int i = 0; i < H; i++) dot += double(w[i] * gr[i]) * double(xr[i]);
      const S c = S(double(r) * r * r * dot / H);
      if (accumulate_dx)
        for (int i = 0; i < H; i++) dxr[i] += r * w[i] * gr[i] - c * xr[i];
      else
        for (int i = 0; i < H; i++) dxr[i] = r * w[i] * gr[i] - c * xr[i];
    }
  }, grain_for(H));
}

// dbias[n] (+)= sum_t dy[t,n], column-parallel (shared by both linear paths).
template <typename S>
static void bias_bwd(const S* dy, int T, int N, S* dbias, bool accumulate) {
  parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    if (!accumulate) std::fill(dbias + n0, dbias + n1, S(0));
    for (int64_t t = 0; t < T; t++) {
      const S* g = dy + t * N;
      for (int64_t n = n0; n < n1; n++) dbias[n] += g[n];
    }
  }, 64);
}

// A linear backward over no tokens: its sums are zeros, which matter only when written.
template <typename S>
static void no_tokens(int K, int N, S* dW, S* dbias, bool accumulate_dw) {
  if (accumulate_dw) return;
  std::fill(dW, dW + int64_t(N) * K, S(0));
  if (dbias) std::fill(dbias, dbias + N, S(0));
}

// Linear: y[T,N] = x[T,K] W[N,K]^T + b, hence
//   dx[T,K] (+)= dy[T,N] W[N,K]
//   dW[N,K] (+)= dy[T,N]^T x[T,K]
//   db[N]   (+)= sum_t dy[t,:]
// fp32 goes through our sgemm; the double path (gradient checks) is plain dot products.
template <>
void linear_bwd<float>(const float* x, const float* W, const float* dy, int T, int K, int N, float* dx,
                       float* dW, float* dbias, bool accumulate_dx, bool accumulate_dw) {
  if (T <= 0) return no_tokens(K, N, dW, dbias, accumulate_dw);
  if (dx) sgemm(false, false, T, K, N, 1.0f, dy, N, W, K, accumulate_dx ? 1.0f : 0.0f, dx, K);
  // op(A) = dy^T: A = dy stored [T,N] (transA), op(B) = x [T,K]; beta 0 never reads dW
  sgemm(true, false, N, K, T, 1.0f, dy, N, x, K, accumulate_dw ? 1.0f : 0.0f, dW, K);
  if (dbias) bias_bwd(dy, T, N, dbias, accumulate_dw);
}

template <>
void linear_bwd<double>(const double* x, const double* W, const double* dy, int T, int K, int N, double* dx,
                        double* dW, double* dbias, bool accumulate_dx, bool accumulate_dw) {
  if (T <= 0) return no_tokens(K, N, dW, dbias, accumulate_dw);
  if (dx) {
    parallel_for(T, [&](int64_t t0, int64_t t1, int) {
      for (int64_t t = t0; t < t1; t++) {
        double* d = dx + t * K;  // [K]
        if (!accumulate_dx) std::fill(d, d + K, 0.0);
        for (int n = 0; n < N; n++) {
          const double g = dy[t * N + n];
          const double* wr = W + int64_t(n) * K;
          for (int k = 0; k < K; k++) d[k] += g * wr[k];
        }
      }
    });
  }
  parallel_for(N, [&](int64_t n0, int64_t n1, int) {
    for (int64_t n = n0; n < n1; n++) {
      double* d = dW + n * K;  // [K]
      if (!accumulate_dw) std::fill(d, d + K, 0.0);
      for (int64_t t = 0; t < T; t++) {
        const double g = dy[t * N + n];
        const double* xr = x + t * K;
        for (int k = 0; k < K; k++) d[k] += g * xr[k];
      }
    }
  });
  if (dbias) bias_bwd(dy, T, N, dbias, accumulate_dw);
}

// SwiGLU: out = silu(g) u with silu(g) = g s, s = sigmoid(g), silu'(g) = s (1 + g (1 - s)):
//   dgate = dout u s (1 + g (1 - s)),  dup = dout g s
// Values are read before writing so dgate / dup may alias gate / up.
// fp32 at the avx512 level: swiglu_avx512.cpp (the same formula, its own e^-g, within 2 ulp of std::exp's).
template <typename S>
void swiglu_bwd(const S* gate, const S* up, const S* dout, int64_t n, S* dgate, S* dup) {
  if constexpr (std::is_same_v<S, float>) {
    static const bool vec = isa_allows(Isa::avx512);
    if (vec) {
      parallel_for(n, [&](int64_t b, int64_t e, int) {
        swiglu_bwd_avx512(gate + b, up + b, dout + b, e - b, dgate + b, dup + b);
      }, 16384);
      return;
    }
  }
  parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; i++) {
      const S g = gate[i], u = up[i], d = dout[i];
      const S s = S(1) / (S(1) + std::exp(-g));
      dgate[i] = d * u * s * (S(1) + g * (S(1) - s));
      dup[i] = d * g * s;
    }
  }, 16384);
}

// Pooling (mode 0 mean, 1 cls). Mean: out_b = (1/len_b) sum_{t in b} x_t, so dx_t = dout_b / len_b.
// Cls: out_b = x_{first(b)}, so dx_first = dout_b and every other row of b gets 0. Overwrites dx.
template <typename S>
void pool_bwd(const S* dout, const int32_t* cu, int B, int P, int mode, S* dx) {
  parallel_for(B, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; b++) {
      const int64_t s = cu[b], e = cu[b + 1];
      if (e <= s) continue;
      const S* g = dout + b * P;  // [P]
      if (mode == 1) {
        std::memcpy(dx + s * P, g, sizeof(S) * P);
        std::fill(dx + (s + 1) * P, dx + e * P, S(0));
        continue;
      }
      const S inv = S(1.0 / double(e - s));
      for (int64_t t = s; t < e; t++)
        for (int p = 0; p < P; p++) dx[t * P + p] = g[p] * inv;
    }
  });
}

// L2 normalisation: y = x / n, n = max(||x||, 1e-12) (saved). Away from the clamp,
//   dx = (dy - y (y . dy)) / n
// (the Jacobian of x/||x|| is (I - y y^T) / n); under the clamp n is a constant and dx = dy / n.
// Without normalisation y = x and dx = dy.
template <typename S>
void l2norm_bwd(const S* y, const S* norm, const S* dy, int B, int P, bool normalize, S* dx) {
  parallel_for(B, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; b++) {
      const S* yr = y + b * P;
      const S* g = dy + b * P;
      S* d = dx + b * P;
      if (!normalize) {
        std::memcpy(d, g, sizeof(S) * P);
        continue;
      }
      const S n = norm[b];
      double acc = 0;
      if (n > S(1e-12))
        for (int p = 0; p < P; p++) acc += double(yr[p]) * double(g[p]);
      const S dot = S(acc);
      const S inv = S(1) / n;
      for (int p = 0; p < P; p++) d[p] = (g[p] - yr[p] * dot) * inv;
    }
  });
}

#define L2E_INSTANTIATE_BWD(S)                                                                  \
  template void embedding_bwd<S>(const int32_t*, int, const S*, int, S*);                       \
  template void rmsnorm_bwd<S>(const S*, const S*, const S*, const S*, int, int, S*, S*, bool, bool); \
  template void swiglu_bwd<S>(const S*, const S*, const S*, int64_t, S*, S*);                   \
  template void pool_bwd<S>(const S*, const int32_t*, int, int, int, S*);                       \
  template void l2norm_bwd<S>(const S*, const S*, const S*, int, int, bool, S*);
L2E_INSTANTIATE_BWD(float)
L2E_INSTANTIATE_BWD(double)

}  // namespace cpu
}  // namespace l2e
