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
// most expensive (longest sequence) first, because var-len costs are very uneven.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace l2e {
namespace cpu {

namespace {
constexpr int kKeyBlock = 64;  // keys whose k, v, dk, dv stay hot in cache while the queries stream by
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

  auto run_item = [&](const Item& it, std::vector<S>& D) {
    const int64_t base = cu[it.b];
    const int L = cu[it.b + 1] - cu[it.b];
    const int64_t koff = int64_t(it.g) * hd;
    for (int j = 0; j < L; j++) {
      std::fill(dk + (base + j) * ks + koff, dk + (base + j) * ks + koff + hd, S(0));
      std::fill(dv + (base + j) * ks + koff, dv + (base + j) * ks + koff + hd, S(0));
    }
    D.resize(size_t(std::max(L, 1)));
    for (int h = it.g * group; h < (it.g + 1) * group; h++) {
      const int64_t qoff = int64_t(h) * hd;
      const S* lse_h = lse + int64_t(h) * T + base;  // [L]
      // D_i = dO_i . o_i; and dq of this head starts at zero
      for (int i = 0; i < L; i++) {
        const S* o = out + (base + i) * qs + qoff;
        const S* g = dout + (base + i) * qs + qoff;
        S d = 0;
        for (int c = 0; c < hd; c++) d += g[c] * o[c];
        D[i] = d;
        std::fill(dq + (base + i) * qs + qoff, dq + (base + i) * qs + qoff + hd, S(0));
      }
      for (int j0 = 0; j0 < L; j0 += kKeyBlock) {
        const int j1 = std::min(L, j0 + kKeyBlock);
        // causal: only queries i >= j0 see keys of this block
        for (int i = j0; i < L; i++) {
          const S* qi = q + (base + i) * qs + qoff;     // [hd]
          const S* gi = dout + (base + i) * qs + qoff;  // [hd] dO_i
          S* dqi = dq + (base + i) * qs + qoff;         // [hd]
          const S li = lse_h[i], Di = D[i];
          const int jend = std::min(j1, i + 1);
          for (int j = j0; j < jend; j++) {
            const S* kj = k + (base + j) * ks + koff;
            const S* vj = v + (base + j) * ks + koff;
            S s = 0, dp = 0;
            for (int c = 0; c < hd; c++) {
              s += qi[c] * kj[c];
              dp += gi[c] * vj[c];
            }
            const S p = std::exp(s * scale - li);    // P_ij
            const S ds = p * (dp - Di) * scale;      // scale * dS_ij
            S* dkj = dk + (base + j) * ks + koff;
            S* dvj = dv + (base + j) * ks + koff;
            for (int c = 0; c < hd; c++) {
              dvj[c] += p * gi[c];
              dkj[c] += ds * qi[c];
              dqi[c] += ds * kj[c];
            }
          }
        }
      }
    }
  };

  std::atomic<int64_t> next{0};
  const int64_t n_items = int64_t(items.size());
  parallel_for(std::min<int64_t>(num_threads(), n_items), [&](int64_t, int64_t, int) {
    std::vector<S> D;
    for (int64_t w; (w = next.fetch_add(1)) < n_items;) run_item(items[size_t(w)], D);
  });
}

template void attention_bwd<float>(const float*, const float*, const float*, const float*, const float*,
                                   const float*, const int32_t*, int, int, int, int, float*, float*, float*);
template void attention_bwd<double>(const double*, const double*, const double*, const double*, const double*,
                                    const double*, const int32_t*, int, int, int, int, double*, double*,
                                    double*);

}  // namespace cpu
}  // namespace l2e
