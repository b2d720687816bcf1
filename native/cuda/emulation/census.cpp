// The census of census.h: the running launch's counts are kept by its worker (runtime.cpp, found
// from the fiber's frame like everything a kernel reaches: no thread-local lookup, which under the
// sanitizers goes through an interceptor on every instruction counted), and added to the process's
// table under a lock when the launch ends.
#include "census.h"

#include <mutex>

namespace l2e {
namespace emu {

namespace {
std::mutex g_mu;
std::map<std::string, KernelCensus> g_table;
}  // namespace

// Counting runs on every emulated mma and ldmatrix, so it is not instrumented in the sanitizer build
// (as ptx.cpp's own arithmetic is not).
#if defined(__SANITIZE_ADDRESS__)
#define L2E_CENSUS_UNINSTRUMENTED __attribute__((no_sanitize_address, no_sanitize_undefined))
#else
#define L2E_CENSUS_UNINSTRUMENTED
#endif

L2E_CENSUS_UNINSTRUMENTED void census_mma(uint64_t flops) { running_census().mma_flops += flops; }

// the passes one 8x8 matrix takes in the bank model (census.h)
L2E_CENSUS_UNINSTRUMENTED static int ldmatrix_passes(const uint64_t (&rows)[8]) {
  int in_group[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // distinct rows seen so far in each 16-byte bank group
  int worst = 0;
  for (int j = 0; j < 8; j++) {
    bool seen = false;  // a row read before is one read
    for (int k = 0; k < j && !seen; k++) seen = rows[k] == rows[j];
    if (seen) continue;
    const int n = ++in_group[(rows[j] / 16) % 8];
    worst = n > worst ? n : worst;
  }
  return worst;
}

L2E_CENSUS_UNINSTRUMENTED void census_ldmatrix(const uint64_t (&rows)[8]) {
  KernelCensus& c = running_census();
  c.ldmatrix_matrices += 1;
  c.ldmatrix_wavefronts += uint64_t(ldmatrix_passes(rows));
}

void census_library_call(const char* name, uint64_t flops) {
  std::lock_guard<std::mutex> lock(g_mu);
  KernelCensus& e = g_table[name];
  e.launches += 1;
  e.mma_flops += flops;
}

void census_launch_done(const char* kernel, KernelCensus& counts) {
  const KernelCensus c = counts;
  counts = KernelCensus{};
  std::lock_guard<std::mutex> lock(g_mu);
  KernelCensus& e = g_table[kernel];
  e.launches += 1;
  e.mma_flops += c.mma_flops;
  e.ldmatrix_matrices += c.ldmatrix_matrices;
  e.ldmatrix_wavefronts += c.ldmatrix_wavefronts;
}

std::map<std::string, KernelCensus> census_take() {
  std::lock_guard<std::mutex> lock(g_mu);
  std::map<std::string, KernelCensus> out;
  out.swap(g_table);
  return out;
}

}  // namespace emu
}  // namespace l2e
