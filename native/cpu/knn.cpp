// Exact k-NN: for each block of queries (one per task, threads work on different query blocks) and
// each block of the pool, S = Q_blk · P_blkᵀ through sgemm, then every row of S is merged into that
// query's bounded heap of the k best candidates so far. Memory: a QB × PB score tile per thread plus
// nq × k results — never nq × np.
//   cosine:    key = (q·p) / (|q| |p|)            (higher is better)
//   euclidean: key = −(|q|² + |p|² − 2 q·p) = −d²  (higher is better; reported as sqrt(max(d², 0)))
// Float32 limits, and what is done about them:
//   - cosine: q·p of rows far from unit length under- or overflows float32 (rows scaled by 1e-30 all
//     scored 0, by 1e20 inf). When a row's norm is outside [2^-50, 2^50], the search runs on unit-length
//     copies (x / |x|, |x| in double), where q·p is the cosine itself.
//   - euclidean: |q|² + |p|² − 2 q·p cancels: its float32 error grows with |q||p|, so rows of norm 1000
//     ranked pairs 0.1 apart at random. The heap keeps k + EXTRA candidates by that key, which are then
//     scored again exactly, d² = Σ (q − p)² in double, and the best k of them kept and reported.
#include "cpu/knn.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
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

// Candidates kept beyond k for the exact euclidean re-scoring.
constexpr int64_t EXTRA = 32;

// Rows whose norm is outside [2^-50, 2^50] make float32 dot products under- or overflow.
bool outside_safe_range(const std::vector<double>& norms2) {
  const double lo = std::ldexp(1.0, -100), hi = std::ldexp(1.0, 100);
  for (double n2 : norms2) {
    if (n2 > 0 && (n2 < lo || n2 > hi)) return true;
  }
  return false;
}

// Unit-length copies of the rows (zero rows stay zero).
std::vector<float> unit_rows(const float* x, int64_t n, int64_t dim, const std::vector<double>& norms2) {
  std::vector<float> out(static_cast<size_t>(n * dim));
  for (int64_t i = 0; i < n; i++) {
    const double inv = norms2[size_t(i)] > 0 ? 1.0 / std::sqrt(norms2[size_t(i)]) : 0.0;
    for (int64_t d = 0; d < dim; d++) out[size_t(i * dim + d)] = float(double(x[i * dim + d]) * inv);
  }
  return out;
}

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

  std::vector<double> qn2 = squared_norms(queries, nq, dim, "queries");
  std::vector<double> pn2 = squared_norms(pool, np, dim, "pool");
  // cosine of rows far from unit length: on unit-length copies (see the header)
  std::vector<float> qunit, punit;
  if (cosine && (outside_safe_range(qn2) || outside_safe_range(pn2))) {
    qunit = unit_rows(queries, nq, dim, qn2);
    punit = unit_rows(pool, np, dim, pn2);
    queries = qunit.data();
    pool = punit.data();
    for (double& n2 : qn2) n2 = n2 > 0 ? 1.0 : 0.0;
    for (double& n2 : pn2) n2 = n2 > 0 ? 1.0 : 0.0;
  }
  // Per-row factors: cosine uses reciprocal norms (0 for a zero vector, whose similarity is then 0);
  // euclidean uses the squared norms themselves.
  std::vector<float> qf(static_cast<size_t>(nq)), pf(static_cast<size_t>(np));
  for (int64_t i = 0; i < nq; i++) qf[size_t(i)] = cosine ? (qn2[size_t(i)] > 0 ? float(1.0 / std::sqrt(qn2[size_t(i)])) : 0.f) : float(qn2[size_t(i)]);
  for (int64_t j = 0; j < np; j++) pf[size_t(j)] = cosine ? (pn2[size_t(j)] > 0 ? float(1.0 / std::sqrt(pn2[size_t(j)])) : 0.f) : float(pn2[size_t(j)]);
  // candidates kept per query: k, and for euclidean the extra ones of the exact re-scoring
  const int64_t kk = cosine ? k : std::min(np, k + EXTRA);

  // Tile sizes: enough query blocks to keep every thread busy, a pool block of a few MiB of scores.
  const int64_t threads = num_threads();
  const int64_t QB = std::max<int64_t>(1, std::min<int64_t>(256, (nq + threads - 1) / threads));
  const int64_t PB = std::min<int64_t>(np, 2048);
  const int64_t nblocks = (nq + QB - 1) / QB;

  parallel_for(nblocks, [&](int64_t b0, int64_t b1, int) {
    std::vector<float> tile(static_cast<size_t>(QB * PB));          // [QB, PB] scores
    std::vector<Cand> heaps(static_cast<size_t>(QB * kk));           // per query row: a heap whose top is the worst kept
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
          Cand* heap = heaps.data() + r * kk;
          int64_t& n = sizes[size_t(r)];
          const float qfac = qf[size_t(q0 + r)];
          for (int64_t c = 0; c < pb; c++) {
            const int64_t j = p0 + c;
            const float key = cosine ? s[c] * qfac * pf[size_t(j)] : -(qfac + pf[size_t(j)] - 2.0f * s[c]);
            const Cand cand{key, int32_t(j)};
            if (n < kk) {
              heap[n++] = cand;
              std::push_heap(heap, heap + n, ranks_before);
            } else if (ranks_before(cand, heap[0])) {
              std::pop_heap(heap, heap + kk, ranks_before);
              heap[kk - 1] = cand;
              std::push_heap(heap, heap + kk, ranks_before);
            }
          }
        }
      }
      for (int64_t r = 0; r < qb; r++) {
        Cand* heap = heaps.data() + r * kk;
        int32_t* oi = indices + (q0 + r) * k;
        float* os = scores + (q0 + r) * k;
        if (cosine) {
          std::sort_heap(heap, heap + k, ranks_before);  // best first
          for (int64_t t = 0; t < k; t++) {
            oi[t] = heap[t].idx;
            os[t] = heap[t].key;
          }
          continue;
        }
        // euclidean: the kept candidates scored again exactly, the best k of them by that
        const float* q = queries + (q0 + r) * dim;
        std::vector<std::pair<double, int32_t>> exact(static_cast<size_t>(kk));
        for (int64_t t = 0; t < kk; t++) {
          const float* p = pool + int64_t(heap[t].idx) * dim;
          double d2 = 0;
          for (int64_t d = 0; d < dim; d++) {
            const double diff = double(q[d]) - double(p[d]);
            d2 += diff * diff;
          }
          exact[size_t(t)] = {d2, heap[t].idx};
        }
        std::sort(exact.begin(), exact.end());  // nearest first; the same distance: the lower index first
        for (int64_t t = 0; t < k; t++) {
          oi[t] = exact[size_t(t)].second;
          os[t] = float(std::sqrt(exact[size_t(t)].first));
        }
      }
    }
  });
}

}  // namespace l2e
