// InfoNCE over a contrastive batch (FlagEmbedding's bi-encoder loss).
//
//   s_ij   = q_i . p_j / tau           for j in the scored set of query i (all B*G passages when
//                                      in_batch, else only its own group [iG, iG+G)); -inf elsewhere
//   loss   = (1/B) sum_i (lse_i - s_{i,iG}),   lse_i = log sum_j exp(s_ij)   (max-shifted, stable)
//   dS_ij  = (softmax_ij - [j == iG]) / B                       (0 outside the scored set)
//   dq_i   = sum_j dS_ij p_j / tau
//   dp_j   = sum_i dS_ij q_i / tau
// The log-softmax runs in double: B*G values per row are cheap and tau = 0.02 makes the logits large.
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace l2e {
namespace cpu {

template <typename S>
S infonce(const S* q, const S* p, int B, int G, int P, S temperature, bool in_batch, S* scores, S* dq,
          S* dp) {
  const int NP = B * G;  // passages
  if (B <= 0) return S(0);
  const double inv_tau = 1.0 / double(temperature);
  const S neg_inf = -std::numeric_limits<S>::infinity();
  std::vector<double> dS(size_t(B) * NP, 0.0);  // [B, NP]
  std::vector<double> row_loss(size_t(B), 0.0);

  parallel_for(B, [&](int64_t i0, int64_t i1, int) {
    std::vector<double> s(static_cast<size_t>(NP));
    for (int64_t i = i0; i < i1; i++) {
      const int j0 = in_batch ? 0 : int(i) * G, j1 = in_batch ? NP : int(i + 1) * G;
      const S* qi = q + i * P;  // [P]
      double mx = -std::numeric_limits<double>::infinity();
      for (int j = 0; j < NP; j++) {
        if (j < j0 || j >= j1) {
          scores[i * NP + j] = neg_inf;
          continue;
        }
        const S* pj = p + int64_t(j) * P;
        double d = 0;
        for (int c = 0; c < P; c++) d += double(qi[c]) * double(pj[c]);
        s[size_t(j)] = d * inv_tau;
        scores[i * NP + j] = S(s[size_t(j)]);
        mx = std::max(mx, s[size_t(j)]);
      }
      double sum = 0;
      for (int j = j0; j < j1; j++) sum += std::exp(s[size_t(j)] - mx);
      const double lse = mx + std::log(sum);
      const int target = int(i) * G;
      row_loss[size_t(i)] = lse - s[size_t(target)];
      double* d = dS.data() + i * NP;
      for (int j = j0; j < j1; j++) d[j] = std::exp(s[size_t(j)] - lse) / B;
      d[target] -= 1.0 / B;
    }
  });

  // dq_i = sum_j dS_ij p_j / tau   (row-parallel over queries)
  parallel_for(B, [&](int64_t i0, int64_t i1, int) {
    std::vector<double> acc(static_cast<size_t>(P));
    for (int64_t i = i0; i < i1; i++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int j = 0; j < NP; j++) {
        const double w = dS[size_t(i) * NP + j];
        if (w == 0.0) continue;
        const S* pj = p + int64_t(j) * P;
        for (int c = 0; c < P; c++) acc[size_t(c)] += w * double(pj[c]);
      }
      for (int c = 0; c < P; c++) dq[i * P + c] = S(acc[size_t(c)] * inv_tau);
    }
  });
  // dp_j = sum_i dS_ij q_i / tau   (row-parallel over passages)
  parallel_for(NP, [&](int64_t j0, int64_t j1, int) {
    std::vector<double> acc(static_cast<size_t>(P));
    for (int64_t j = j0; j < j1; j++) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int i = 0; i < B; i++) {
        const double w = dS[size_t(i) * NP + j];
        if (w == 0.0) continue;
        const S* qi = q + int64_t(i) * P;
        for (int c = 0; c < P; c++) acc[size_t(c)] += w * double(qi[c]);
      }
      for (int c = 0; c < P; c++) dp[j * P + c] = S(acc[size_t(c)] * inv_tau);
    }
  });

  double total = 0;
  for (int i = 0; i < B; i++) total += row_loss[size_t(i)];
  return S(total / B);
}

template float infonce<float>(const float*, const float*, int, int, int, float, bool, float*, float*, float*);
template double infonce<double>(const double*, const double*, int, int, int, double, bool, double*, double*,
                                double*);

}  // namespace cpu
}  // namespace l2e
