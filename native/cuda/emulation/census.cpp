// The census of census.h: counts of the running launch on this OS thread, added to the process's
// table under a lock when the launch ends.
#include "census.h"

#include <mutex>

namespace l2e {
namespace emu {

namespace {
thread_local KernelCensus t_launch;
std::mutex g_mu;
std::map<std::string, KernelCensus> g_table;
}  // namespace

void census_mma(uint64_t flops) { t_launch.mma_flops += flops; }

int ldmatrix_passes(const uint64_t (&rows)[8]) {
  int worst = 0;
  for (int i = 0; i < 8; i++) {
    const uint64_t group = (rows[i] / 16) % 8;
    int distinct = 0;  // distinct rows of this row's bank group, each counted at its first occurrence
    for (int j = 0; j < 8; j++) {
      if ((rows[j] / 16) % 8 != group) continue;
      bool seen = false;
      for (int k = 0; k < j; k++) seen = seen || rows[k] == rows[j];
      distinct += seen ? 0 : 1;
    }
    worst = distinct > worst ? distinct : worst;
  }
  return worst;
}

void census_ldmatrix(const uint64_t (&rows)[8]) {
  t_launch.ldmatrix_matrices += 1;
  t_launch.ldmatrix_wavefronts += uint64_t(ldmatrix_passes(rows));
}

void census_library_call(const char* name, uint64_t flops) {
  std::lock_guard<std::mutex> lock(g_mu);
  KernelCensus& e = g_table[name];
  e.launches += 1;
  e.mma_flops += flops;
}

void census_launch_done(const char* kernel) {
  KernelCensus c = t_launch;
  t_launch = KernelCensus{};
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
