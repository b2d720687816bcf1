// CPU probing and the L2E_CPU_ISA override (see isa.h).
#include "cpu/isa.h"

#include <cstdlib>
#include <string>

#include "core/tensor.h"

namespace l2e {
namespace cpu {
namespace {

constexpr const char* kIsaNames[] = {"scalar", "avx2", "avx512"};
constexpr Isa kIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512};

// __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
CpuFeatures probe() {
  CpuFeatures f;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f");
  f.avx512_bw = f.avx512 && __builtin_cpu_supports("avx512bw");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
  f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
  f.avx_vnni = f.avx2 && __builtin_cpu_supports("avxvnni");
#endif
  return f;
}

Isa level_of(const CpuFeatures& f) { return f.avx512 ? Isa::avx512 : f.avx2 ? Isa::avx2 : Isa::scalar; }

CpuFeatures capped(CpuFeatures f, Isa level) {
  if (level < Isa::avx512) f.avx512 = f.avx512_bw = f.avx512_bf16 = f.avx512_vnni = false;
  if (level < Isa::avx2) f.avx2 = f.avx_vnni = false;
  return f;
}

struct Choice {
  Isa isa = Isa::scalar;
  std::string error;  // non-empty: L2E_CPU_ISA is unusable, and so is every kernel
  CpuFeatures features;
};

Choice choose() {
  Choice c;
  const Isa best = best_isa();
  c.isa = best;
  const char* env = std::getenv("L2E_CPU_ISA");
  if (env && *env) {
    const std::string want = env;
    bool known = false;
    for (Isa i : kIsas)
      if (want == isa_name(i)) {
        known = true;
        if (i > best)
          c.error = "L2E_CPU_ISA=" + want + ": this CPU does not support " + want + " (its best is " +
                    isa_name(best) + ")";
        else
          c.isa = i;
      }
    if (!known) c.error = "L2E_CPU_ISA=" + want + ": unknown instruction set (expected scalar, avx2 or avx512)";
  }
  c.features = capped(cpu_features_uncapped(), c.isa);
  return c;
}

const Choice& choice() {
  static const Choice c = choose();
  if (!c.error.empty()) throw Error(c.error);
  return c;
}

}  // namespace

const char* isa_name(Isa isa) { return kIsaNames[static_cast<int>(isa)]; }

const CpuFeatures& cpu_features_uncapped() {
  static const CpuFeatures f = probe();
  return f;
}

Isa best_isa() { return level_of(cpu_features_uncapped()); }

Isa active_isa() { return choice().isa; }

bool isa_allows(Isa level) { return level <= active_isa(); }

const CpuFeatures& cpu_features() { return choice().features; }

}  // namespace cpu
}  // namespace l2e
