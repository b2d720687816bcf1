// Exact k-nearest-neighbour search of queries over a pool of vectors (cosine or Euclidean), used by
// evaluation (top-k) and pair mining. Blocked: scores are computed for a block of queries × a block
// of the pool at a time through sgemm, so memory stays bounded for any pool size (never nq × np).
#pragma once
#include <cstdint>

namespace l2e {

enum class KnnMetric : int { Cosine = 0, Euclidean = 1 };

// queries [nq, dim], pool [np, dim] row-major; 1 <= k <= np.
// Writes indices [nq, k] and scores [nq, k], best first:
//   cosine: similarity (zero vectors have similarity 0 to everything), descending;
//   euclidean: distance, ascending.
// Ties go to the lower pool index. Non-finite inputs are an Error naming the row.
void knn_search(const float* queries, int64_t nq, const float* pool, int64_t np, int64_t dim, int64_t k,
                KnnMetric metric, int32_t* indices, float* scores);

}  // namespace l2e
