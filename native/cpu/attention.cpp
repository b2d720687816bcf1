// Causal var-len attention forward with GQA, flash style: each query row streams over its keys in
// blocks with an online softmax (running max m, running sum l, unnormalised accumulator), so no
// S x S score matrix is ever formed. Saves lse = m + log(l) per (head, token) for the backward pass.
//
//   s_ij = scale * q_i . k_j  (j <= i, same sequence),  o_i = sum_j softmax_j(s_ij) v_j
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace l2e {
namespace cpu {

namespace {
constexpr int kKeyBlock = 64;   // keys scored per online-softmax update
constexpr int kQueryBlock = 16; // query rows per parallel task
}  // namespace

template <typename S>
void attention_fwd(const S* q, const S* k, const S* v, const int32_t* cu, int B, int nh, int nkv, int hd,
                   S* out, S* lse) {
  const int group = nh / nkv;            // query heads per kv head
  const int64_t qs = int64_t(nh) * hd;   // row stride of q / out
  const int64_t ks = int64_t(nkv) * hd;  // row stride of k / v
  const S scale = S(1.0 / std::sqrt(double(hd)));
  const int64_t T = cu[B];

  // Work items: (sequence, head, block of query rows), flattened.
  struct Item { int b, h, i0, i1; };
  std::vector<Item> items;
  for (int b = 0; b < B; b++) {
    const int len = cu[b + 1] - cu[b];
    for (int h = 0; h < nh; h++)
      for (int i0 = 0; i0 < len; i0 += kQueryBlock) items.push_back({b, h, i0, std::min(len, i0 + kQueryBlock)});
  }
  // Longest rows last in each sequence cost the most; interleave by reversing so big items start first.
  std::reverse(items.begin(), items.end());

  parallel_for(int64_t(items.size()), [&](int64_t lo, int64_t hi, int) {
    std::vector<S> scores(kKeyBlock), acc(hd);
    for (int64_t w = lo; w < hi; w++) {
      const Item it = items[w];
      const int64_t base = cu[it.b];
      const int kvh = it.h / group;
      for (int i = it.i0; i < it.i1; i++) {
        const S* qi = q + (base + i) * qs + int64_t(it.h) * hd;
        S m = -std::numeric_limits<S>::infinity(), l = 0;
        std::fill(acc.begin(), acc.end(), S(0));
        for (int j0 = 0; j0 <= i; j0 += kKeyBlock) {
          const int j1 = std::min(i + 1, j0 + kKeyBlock);
          S bmax = -std::numeric_limits<S>::infinity();
          for (int j = j0; j < j1; j++) {
            const S* kj = k + (base + j) * ks + int64_t(kvh) * hd;
            S d = 0;
            for (int c = 0; c < hd; c++) d += qi[c] * kj[c];
            d *= scale;
            scores[j - j0] = d;
            bmax = std::max(bmax, d);
          }
          // rescale what we have to the new max: acc, l *= exp(m_old - m_new)
          const S mnew = std::max(m, bmax);
          const S corr = std::exp(m - mnew);
          l *= corr;
          for (int c = 0; c < hd; c++) acc[c] *= corr;
          for (int j = j0; j < j1; j++) {
            const S p = std::exp(scores[j - j0] - mnew);
            l += p;
            const S* vj = v + (base + j) * ks + int64_t(kvh) * hd;
            for (int c = 0; c < hd; c++) acc[c] += p * vj[c];
          }
          m = mnew;
        }
        S* oi = out + (base + i) * qs + int64_t(it.h) * hd;
        const S inv = S(1) / l;
        for (int c = 0; c < hd; c++) oi[c] = acc[c] * inv;
        lse[int64_t(it.h) * T + base + i] = m + std::log(l);
      }
    }
  });
}

template void attention_fwd<float>(const float*, const float*, const float*, const int32_t*, int, int, int, int,
                                   float*, float*);
template void attention_fwd<double>(const double*, const double*, const double*, const int32_t*, int, int, int,
                                    int, double*, double*);

}  // namespace cpu
}  // namespace l2e
