// Causal var-len attention forward with GQA, flash style. Each work item is one (sequence, query
// head, 64-row query tile); it sweeps the key tiles up to the diagonal, scoring a 64 x 64 block with
// one small GEMM, updating a per-row online softmax (running max m, running sum l) and adding the
// block's P V into the output rows, which serve as the unnormalised accumulator. So the only scratch
// is one score tile: no S x S matrix exists. Saves lse = m + log(l) per (head, token) for backward.
//
//   s_ij = scale * q_i . k_j  (j <= i, same sequence),  o_i = sum_j softmax_j(s_ij) v_j
//   per key tile:  m' = max(m, max_j s_ij),  c = exp(m - m'),  l' = c l + sum_j exp(s_ij - m'),
//                  o_i' = c o_i + sum_j exp(s_ij - m') v_j
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/isa.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace l2e {
namespace cpu {

namespace {

constexpr int kQueryTile = 64;  // query rows per work item
constexpr int kKeyTile = 64;    // keys per score tile: 64 x 64 floats = 16 KiB, stays in L1/L2

// C[M,N] = alpha op(A) op(B) + beta C (sgemm conventions; beta == 0: C is write-only). fp32 runs our
// sgemm (serial inside a pool worker); the double path of the gradient checks is a plain loop.
template <typename S>
void tile_gemm(bool tB, int M, int N, int K, S alpha, const S* A, int64_t lda, const S* B, int64_t ldb, S beta,
               S* C, int64_t ldc);

template <>
void tile_gemm<float>(bool tB, int M, int N, int K, float alpha, const float* A, int64_t lda, const float* B,
                      int64_t ldb, float beta, float* C, int64_t ldc) {
  sgemm(false, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void tile_gemm<double>(bool tB, int M, int N, int K, double alpha, const double* A, int64_t lda, const double* B,
                       int64_t ldb, double beta, double* C, int64_t ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double acc = 0;
      for (int k = 0; k < K; k++) acc += A[i * lda + k] * (tB ? B[j * ldb + k] : B[k * ldb + j]);
      double& c = C[i * ldc + j];
      c = beta == 0.0 ? alpha * acc : alpha * acc + beta * c;
    }
}

// x[j] <- exp(x[j] - m) for j < n; returns the sum. Inputs are <= 0 after the shift.
// float: a branch-free exp (Cody-Waite range reduction, Cephes' degree-6 polynomial on
// [-ln2/2, ln2/2], ~2 ulp) on 8-lane GCC vector types; libm's expf is scalar and would cost more
// than the tile's two GEMMs. Built twice, plain (two SSE halves) and AVX2+FMA, picked at run time.
typedef float V8f __attribute__((vector_size(32)));
typedef int32_t V8i __attribute__((vector_size(32)));

// In place (by reference: a vector passed by value would warn about the AVX calling convention).
inline __attribute__((always_inline)) void exp_nonpositive(V8f& t) {
  const V8i underflow = t < -87.0f;  // exp < 2^-125: flushed to 0 (also catches -inf)
  t = underflow ? V8f{} - 87.0f : t;
  const float kMagic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const V8f kf = (t * 1.44269504088896341f + kMagic) - kMagic;  // round(t / ln2), in [-126, 0]
  V8f r = t - kf * 0.693359375f;                                  // ln2 hi part (exact product)
  r = r - kf * -2.12194440e-4f;                                   // ln2 lo part
  V8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const V8i two_k = (__builtin_convertvector(kf, V8i) + 127) << 23;  // 2^k from its exponent bits
  t = (V8f)((V8i)(p * (V8f)two_k) & ~underflow);  // vector casts reinterpret the bits
}

inline __attribute__((always_inline)) float exp_shift_sum_body(float* x, int n, float m) {
  V8f acc{};
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    V8f t;
    std::memcpy(&t, x + j, sizeof t);
    t -= m;
    exp_nonpositive(t);
    std::memcpy(x + j, &t, sizeof t);
    acc += t;
  }
  if (j < n) {  // tail: padded with -inf, whose exp is 0
    V8f t = V8f{} - std::numeric_limits<float>::infinity();
    std::memcpy(&t, x + j, sizeof(float) * size_t(n - j));
    t -= m;
    exp_nonpositive(t);
    std::memcpy(x + j, &t, sizeof(float) * size_t(n - j));
    acc += t;
  }
  float sum = 0.0f;
  for (int u = 0; u < 8; u++) sum += acc[u];
  return sum;
}

float exp_shift_sum_plain(float* x, int n, float m) { return exp_shift_sum_body(x, n, m); }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) float exp_shift_sum_avx2(float* x, int n, float m) {
  return exp_shift_sum_body(x, n, m);
}
#endif

using ExpShiftSum = float (*)(float*, int, float);
ExpShiftSum pick_exp_shift_sum() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (isa_allows(Isa::avx2)) return exp_shift_sum_avx2;
#endif
  return exp_shift_sum_plain;
}

template <typename S>
S exp_shift_sum(S* x, int n, S m);

template <>
float exp_shift_sum<float>(float* x, int n, float m) {
  static const ExpShiftSum fn = pick_exp_shift_sum();
  return fn(x, n, m);
}

template <>
double exp_shift_sum<double>(double* x, int n, double m) {
  double sum = 0;
  for (int j = 0; j < n; j++) sum += (x[j] = std::exp(x[j] - m));
  return sum;
}

}  // namespace

template <typename S>
void attention_fwd(const S* q, const S* k, const S* v, const int32_t* cu, int B, int nh, int nkv, int hd,
                   S* out, S* lse) {
  const int group = nh / nkv;            // query heads per kv head
  const int64_t qs = int64_t(nh) * hd;   // row stride of q / out
  const int64_t ks = int64_t(nkv) * hd;  // row stride of k / v
  const S scale = S(1.0 / std::sqrt(double(hd)));
  const int64_t T = cu[B];

  // Work items: (sequence, query head, query tile). A tile's cost grows with its last row (the keys
  // it sees), and var-len costs are very uneven, so items are handed out dynamically, costliest first.
  struct Item { int b, h, i0; };
  std::vector<Item> items;
  for (int b = 0; b < B; b++) {
    const int len = cu[b + 1] - cu[b];
    for (int h = 0; h < nh; h++)
      for (int i0 = 0; i0 < len; i0 += kQueryTile) items.push_back({b, h, i0});
  }
  auto last_row = [&](const Item& it) { return std::min(cu[it.b + 1] - cu[it.b], it.i0 + kQueryTile); };
  std::stable_sort(items.begin(), items.end(), [&](const Item& x, const Item& y) { return last_row(x) > last_row(y); });

  auto run_item = [&](const Item& it, std::vector<S>& tile, std::vector<S>& m, std::vector<S>& l) {
    const int64_t base = cu[it.b];
    const int len = cu[it.b + 1] - cu[it.b];
    const int mq = std::min(kQueryTile, len - it.i0);
    const int kvh = it.h / group;
    const S* Q = q + (base + it.i0) * qs + int64_t(it.h) * hd;  // [mq, hd] rows of stride qs
    const S* K = k + base * ks + int64_t(kvh) * hd;             // [len, hd] rows of stride ks
    const S* V = v + base * ks + int64_t(kvh) * hd;
    S* O = out + (base + it.i0) * qs + int64_t(it.h) * hd;      // [mq, hd]: the accumulator
    std::fill(m.begin(), m.end(), -std::numeric_limits<S>::infinity());
    std::fill(l.begin(), l.end(), S(0));
    const int i_last = it.i0 + mq - 1;
    for (int j0 = 0; j0 <= i_last; j0 += kKeyTile) {  // causal: keys up to the tile's last query
      const int nk = std::min(kKeyTile, len - j0);
      S* Sc = tile.data();  // [mq, nk] row stride kKeyTile
      tile_gemm<S>(true, mq, nk, hd, scale, Q, qs, K + j0 * ks, ks, S(0), Sc, kKeyTile);  // s = scale Q K^T
      for (int a = 0; a < mq; a++) {
        const int i = it.i0 + a;
        S* row = Sc + a * kKeyTile;
        const int valid = std::min(nk, i - j0 + 1);  // keys j <= i; the rest of the row is masked
        if (valid <= 0) {  // a query above this whole key tile: nothing to add
          std::fill(row, row + nk, S(0));
          continue;
        }
        S bmax = row[0];
        for (int c = 1; c < valid; c++) bmax = std::max(bmax, row[c]);
        const S mnew = std::max(m[a], bmax);
        const S corr = std::exp(m[a] - mnew);  // 0 on the first tile (m = -inf)
        l[a] = l[a] * corr + exp_shift_sum<S>(row, valid, mnew);
        std::fill(row + valid, row + nk, S(0));
        m[a] = mnew;
        if (j0 > 0 && corr != S(1)) {
          S* o = O + a * qs;
          for (int c = 0; c < hd; c++) o[c] *= corr;
        }
      }
      // o += P V (the first tile overwrites, so out needs no zeroing)
      tile_gemm<S>(false, mq, hd, nk, S(1), Sc, kKeyTile, V + j0 * ks, ks, j0 == 0 ? S(0) : S(1), O, qs);
    }
    for (int a = 0; a < mq; a++) {
      S* o = O + a * qs;
      const S inv = S(1) / l[a];
      for (int c = 0; c < hd; c++) o[c] *= inv;
      lse[int64_t(it.h) * T + base + it.i0 + a] = m[a] + std::log(l[a]);
    }
  };

  std::atomic<int64_t> next{0};
  const int64_t n_items = int64_t(items.size());
  parallel_for(std::min<int64_t>(num_threads(), n_items), [&](int64_t, int64_t, int) {
    std::vector<S> tile(size_t(kQueryTile) * kKeyTile), m(kQueryTile), l(kQueryTile);
    for (int64_t w; (w = next.fetch_add(1)) < n_items;) run_item(items[size_t(w)], tile, m, l);
  });
}

template void attention_fwd<float>(const float*, const float*, const float*, const int32_t*, int, int, int, int,
                                   float*, float*);
template void attention_fwd<double>(const double*, const double*, const double*, const int32_t*, int, int, int,
                                    int, double*, double*);

}  // namespace cpu
}  // namespace l2e
