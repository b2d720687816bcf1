// Exact k-NN: for each block of queries (one per task, threads work on different query blocks) and
// each block of the pool, S = Q_blk · P_blkᵀ through sgemm, then every row of S is merged into that
// query's bounded heap of the k best candidates so far. Memory: a QB × PB score tile per thread plus
// nq × k results — never nq × np.
//   cosine:    key = (q·p) / (|q| |p|)            (higher is better)
//   euclidean: key = −(|q|² + |p|² − 2 q·p) = −d²  (higher is better; reported as sqrt(max(d², 0)))
#include "cpu/knn.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"

namespace l2e {
namespace {

struct Cand {
  float key;
  int32_t idx;
};

// Strict "a ranks before b": a higher key, or the same key and a lower index.
inline bool ranks_before(const Cand& a, const Cand& b) { return a.key > b.key || (a.key == b.key && a.idx < b.idx); }

// Squared norms of each row (accumulated in double), checking every value is finite.
std::vector<double> squared_norms(const float* x, int64_t n, int64_t dim, const char* what) {
  std::vector<double> out(static_cast<size_t>(n), 0.0);
  parallel_for(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; i++) {
      const float* r = x + i * dim;
      double s = 0;
      for (int64_t d = 0; d < dim; d++) s += double(r[d]) * double(r[d]);
      out[size_t(i)] = s;
    }
  }, 64);
  for (int64_t i = 0; i < n; i++) {
    if (!std::isfinite(out[size_t(i)])) {
      throw Error(std::string("knn: ") + what + " row " + std::to_string(i) + " has a non-finite value (NaN or Inf)");
    }
  }
  return out;
}

}  // namespace

void knn_search(const float* queries, int64_t nq, const float* pool, int64_t np, int64_t dim, int64_t k,
                KnnMetric metric, int32_t* indices, float* scores) {
  if (nq < 0 || np <= 0 || dim <= 0) throw Error("knn: empty pool or bad shape");
  if (k < 1 || k > np) throw Error("knn: k must be in [1, pool size], got " + std::to_string(k));
  if (np > INT32_MAX) throw Error("knn: pool larger than 2^31 rows");
  if (nq == 0) return;
  const bool cosine = metric == KnnMetric::Cosine;

  const std::vector<double> qn2 = squared_norms(queries, nq, dim, "queries");
  const std::vector<double> pn2 = squared_norms(pool, np, dim, "pool");
  // Per-row factors: cosine uses reciprocal norms (0 for a zero vector, whose similarity is then 0);
  // euclidean uses the squared norms themselves.
  std::vector<float> qf(static_cast<size_t>(nq)), pf(static_cast<size_t>(np));
  for (int64_t i = 0; i < nq; i++) qf[size_t(i)] = cosine ? (qn2[size_t(i)] > 0 ? float(1.0 / std::sqrt(qn2[size_t(i)])) : 0.f) : float(qn2[size_t(i)]);
  for (int64_t j = 0; j < np; j++) pf[size_t(j)] = cosine ? (pn2[size_t(j)] > 0 ? float(1.0 / std::sqrt(pn2[size_t(j)])) : 0.f) : float(pn2[size_t(j)]);

  // Tile sizes: enough query blocks to keep every thread busy, a pool block of a few MiB of scores.
  const int64_t threads = num_threads();
  const int64_t QB = std::max<int64_t>(1, std::min<int64_t>(256, (nq + threads - 1) / threads));
  const int64_t PB = std::min<int64_t>(np, 2048);
  const int64_t nblocks = (nq + QB - 1) / QB;

  parallel_for(nblocks, [&](int64_t b0, int64_t b1, int) {
    std::vector<float> tile(static_cast<size_t>(QB * PB));          // [QB, PB] scores
    std::vector<Cand> heaps(static_cast<size_t>(QB * k));            // per query row: a heap whose top is the worst kept
    std::vector<int64_t> sizes(static_cast<size_t>(QB));
    for (int64_t blk = b0; blk < b1; blk++) {
      const int64_t q0 = blk * QB, qb = std::min(QB, nq - q0);
      std::fill(sizes.begin(), sizes.end(), 0);
      for (int64_t p0 = 0; p0 < np; p0 += PB) {
        const int64_t pb = std::min(PB, np - p0);
        // tile[qb, pb] = Q[q0:q0+qb] · P[p0:p0+pb]ᵀ   (sgemm runs serially inside a parallel_for task)
        sgemm(false, true, qb, pb, dim, 1.0f, queries + q0 * dim, dim, pool + p0 * dim, dim, 0.0f, tile.data(), pb);
        for (int64_t r = 0; r < qb; r++) {
          const float* s = tile.data() + r * pb;
          Cand* heap = heaps.data() + r * k;
          int64_t& n = sizes[size_t(r)];
          const float qfac = qf[size_t(q0 + r)];
          for (int64_t c = 0; c < pb; c++) {
            const int64_t j = p0 + c;
            const float key = cosine ? s[c] * qfac * pf[size_t(j)] : -(qfac + pf[size_t(j)] - 2.0f * s[c]);
            const Cand cand{key, int32_t(j)};
            if (n < k) {
              heap[n++] = cand;
              std::push_heap(heap, heap + n, ranks_before);
            } else if (ranks_before(cand, heap[0])) {
              std::pop_heap(heap, heap + k, ranks_before);
              heap[k - 1] = cand;
              std::push_heap(heap, heap + k, ranks_before);
            }
          }
        }
      }
      for (int64_t r = 0; r < qb; r++) {
        Cand* heap = heaps.data() + r * k;
        std::sort_heap(heap, heap + k, ranks_before);  // best first
        int32_t* oi = indices + (q0 + r) * k;
        float* os = scores + (q0 + r) * k;
        for (int64_t t = 0; t < k; t++) {
          oi[t] = heap[t].idx;
          os[t] = cosine ? heap[t].key : std::sqrt(std::max(0.0f, -heap[t].key));
        }
      }
    }
  });
}

}  // namespace l2e
