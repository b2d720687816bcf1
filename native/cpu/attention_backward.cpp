// Causal var-len attention backward with GQA, flash style: the probabilities are recomputed from the
// saved log-sum-exp instead of being stored, so no T x T matrix exists at any point.
//
// Forward (per sequence, query head h reading kv head g = h / (nh/nkv), scale = 1/sqrt(hd)):
//   s_ij = scale q_i . k_j   (j <= i)      P_ij = exp(s_ij - lse_i)      o_i = sum_j P_ij v_j
// Backward, with dO the gradient of o:
//   dV_j  = sum_i P_ij dO_i                     (dP_ij = dO_i . v_j)
//   D_i   = sum_j P_ij dP_ij = dO_i . o_i       (row sum, cheap form)
//   dS_ij = P_ij (dP_ij - D_i)                  (softmax Jacobian)
//   dQ_i  = scale sum_j dS_ij k_j
//   dK_j  = scale sum_i dS_ij q_i
// A kv head is shared by the nh/nkv query heads of its group, so its dK, dV are sums over them.
//
// Work item = (sequence, kv head): it owns dk, dv of that kv head and dq of the query heads in its
// group for that sequence, so items never write the same element. Items are handed out dynamically,
// most expensive (longest sequence) first, because var-len costs are very uneven. Inside an item the
// sequence is cut into 64 x 64 (query, key) tiles below the diagonal; each tile is five small GEMMs
// (s, dP, dV, dK, dQ) around an elementwise pass, so the only scratch is two 64 x 64 tiles.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "cpu/gemm.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace l2e {
namespace cpu {

namespace {

constexpr int kBlock = 64;  // query rows x keys per tile: the tile's scores, P and dS stay in L1/L2

// C[M,N] = alpha op(A) op(B) + beta C with sgemm's conventions (beta == 0: C is write-only).
// fp32 uses our sgemm (single-threaded at these sizes, so safe inside a worker); the double path
// of the gradient checks is a plain triple loop.
template <typename S>
void tile_gemm(bool tA, bool tB, int M, int N, int K, S alpha, const S* A, int64_t lda, const S* B,
               int64_t ldb, S beta, S* C, int64_t ldc);

template <>
void tile_gemm<float>(bool tA, bool tB, int M, int N, int K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  sgemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <>
void tile_gemm<double>(bool tA, bool tB, int M, int N, int K, double alpha, const double* A, int64_t lda,
                       const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      double acc = 0;
      for (int k = 0; k < K; k++) acc += (tA ? A[k * lda + i] : A[i * lda + k]) * (tB ? B[j * ldb + k] : B[k * ldb + j]);
      double& c = C[i * ldc + j];
      c = beta == 0.0 ? alpha * acc : alpha * acc + beta * c;
    }
}

}  // namespace

template <typename S>
void attention_bwd(const S* q, const S* k, const S* v, const S* out, const S* lse, const S* dout,
                   const int32_t* cu, int B, int nh, int nkv, int hd, S* dq, S* dk, S* dv) {
  const int group = nh / nkv;            // query heads per kv head
  const int64_t qs = int64_t(nh) * hd;   // row stride of q / out / dout / dq
  const int64_t ks = int64_t(nkv) * hd;  // row stride of k / v / dk / dv
  const S scale = S(1.0 / std::sqrt(double(hd)));
  const int64_t T = cu[B];

  struct Item { int b, g; };
  std::vector<Item> items;
  items.reserve(size_t(B) * nkv);
  for (int b = 0; b < B; b++)
    for (int g = 0; g < nkv; g++) items.push_back({b, g});
  std::stable_sort(items.begin(), items.end(), [&](const Item& x, const Item& y) {
    return cu[x.b + 1] - cu[x.b] > cu[y.b + 1] - cu[y.b];
  });

  struct Scratch { std::vector<S> D, P, dS; };
  auto run_item = [&](const Item& it, Scratch& sc) {
    const int64_t base = cu[it.b];
    const int L = cu[it.b + 1] - cu[it.b];
    if (L <= 0) return;
    const int64_t koff = int64_t(it.g) * hd;
    const S* K = k + base * ks + koff;  // [L, hd] rows of stride ks
    const S* V = v + base * ks + koff;
    S* dK = dk + base * ks + koff;
    S* dV = dv + base * ks + koff;
    for (int j = 0; j < L; j++) {
      std::fill(dK + j * ks, dK + j * ks + hd, S(0));
      std::fill(dV + j * ks, dV + j * ks + hd, S(0));
    }
    sc.D.resize(size_t(L));
    sc.P.resize(size_t(kBlock) * kBlock);
    sc.dS.resize(size_t(kBlock) * kBlock);
    for (int h = it.g * group; h < (it.g + 1) * group; h++) {
      const int64_t qoff = int64_t(h) * hd;
      const S* Q = q + base * qs + qoff;    // [L, hd] rows of stride qs
      const S* dO = dout + base * qs + qoff;
      S* dQ = dq + base * qs + qoff;
      const S* lse_h = lse + int64_t(h) * T + base;  // [L]
      // D_i = dO_i . o_i; dq of this head starts at zero
      for (int i = 0; i < L; i++) {
        const S* o = out + (base + i) * qs + qoff;
        S d = 0;
        for (int c = 0; c < hd; c++) d += dO[i * qs + c] * o[c];
        sc.D[size_t(i)] = d;
        std::fill(dQ + i * qs, dQ + i * qs + hd, S(0));
      }
      for (int i0 = 0; i0 < L; i0 += kBlock) {
        const int mq = std::min(kBlock, L - i0);
        for (int j0 = 0; j0 < i0 + mq; j0 += kBlock) {  // causal: keys up to the block's last query
          const int nk = std::min(kBlock, L - j0);
          S* P = sc.P.data();    // [mq, nk] row stride kBlock
          S* dS = sc.dS.data();  // [mq, nk] row stride kBlock
          tile_gemm<S>(false, true, mq, nk, hd, scale, Q + i0 * qs, qs, K + j0 * ks, ks, S(0), P, kBlock);   // s
          tile_gemm<S>(false, true, mq, nk, hd, S(1), dO + i0 * qs, qs, V + j0 * ks, ks, S(0), dS, kBlock);  // dP
          for (int a = 0; a < mq; a++) {
            const int i = i0 + a;
            const S li = lse_h[i], Di = sc.D[size_t(i)];
            S* pr = P + a * kBlock;
            S* dr = dS + a * kBlock;
            for (int c = 0; c < nk; c++) {
              if (j0 + c > i) {  // above the diagonal: P = 0
                pr[c] = S(0);
                dr[c] = S(0);
                continue;
              }
              const S p = std::exp(pr[c] - li);  // P_ij
              pr[c] = p;
              dr[c] = p * (dr[c] - Di) * scale;  // scale * dS_ij
            }
          }
          tile_gemm<S>(true, false, nk, hd, mq, S(1), P, kBlock, dO + i0 * qs, qs, S(1), dV + j0 * ks, ks);  // dV += P^T dO
          tile_gemm<S>(true, false, nk, hd, mq, S(1), dS, kBlock, Q + i0 * qs, qs, S(1), dK + j0 * ks, ks);  // dK += dS^T Q
          tile_gemm<S>(false, false, mq, hd, nk, S(1), dS, kBlock, K + j0 * ks, ks, S(1), dQ + i0 * qs, qs); // dQ += dS K
        }
      }
    }
  };

  std::atomic<int64_t> next{0};
  const int64_t n_items = int64_t(items.size());
  parallel_for(std::min<int64_t>(num_threads(), n_items), [&](int64_t, int64_t, int) {
    Scratch sc;
    for (int64_t w; (w = next.fetch_add(1)) < n_items;) run_item(items[size_t(w)], sc);
  });
}

template void attention_bwd<float>(const float*, const float*, const float*, const float*, const float*,
                                   const float*, const int32_t*, int, int, int, int, float*, float*, float*);
template void attention_bwd<double>(const double*, const double*, const double*, const double*, const double*,
                                    const double*, const int32_t*, int, int, int, int, double*, double*,
                                    double*);

}  // namespace cpu
}  // namespace l2e
