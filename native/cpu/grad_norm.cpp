// The gradient's squared norm, Σ x² in double, over a flat buffer whose nonzero values lie in known
// ranges: each thread of parallel_for's split of the whole buffer [0, n) adds its elements in index
// order into eight sums by index mod 8 (one chain of dependent adds would wait on each add's
// latency), then the threads' sums are added in thread order. An element outside the ranges is zero,
// and adding +0 to a sum of squares (never -0) leaves it as it was, so the ranges give the whole
// buffer's sum bit for bit: the backend's sumsq op (one range) and the CPU training step (the table's
// rows its batches named, cpu/cpu_step.cpp) agree to the last bit.
#include <algorithm>
#include <vector>

#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace l2e {
namespace cpu {

double sumsq(const float* a, int64_t n, const std::vector<Range>& nonzero) {
  std::vector<double> part(num_threads(), 0.0);
  parallel_for(n, [&](int64_t s, int64_t e, int t) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    // the first range that ends past s
    auto r = std::upper_bound(nonzero.begin(), nonzero.end(), s, [](int64_t x, const Range& q) { return x < q.end; });
    for (; r != nonzero.end() && r->begin < e; ++r) {
      int64_t i = std::max(s, r->begin);
      const int64_t end = std::min(e, r->end);
      for (; i < end && i % 8 != 0; i++) acc[i % 8] += double(a[i]) * double(a[i]);
      for (; i + 8 <= end; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += double(a[i + j]) * double(a[i + j]);
      for (; i < end; i++) acc[i % 8] += double(a[i]) * double(a[i]);
    }
    part[t] += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  }, 65536);
  double total = 0;
  for (double v : part) total += v;
  return total;
}

}  // namespace cpu
}  // namespace l2e
