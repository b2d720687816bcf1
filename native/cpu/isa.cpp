// CPU probing and the L2E_CPU_ISA override (see isa.h).
#include "cpu/isa.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "core/tensor.h"

namespace l2e {
namespace cpu {
namespace {

constexpr const char* kIsaNames[] = {"scalar", "avx2", "avx512"};
// The levels L2E_CPU_ISA names, lowest first: the vector levels, then amx (avx512 + tiles).
constexpr const char* kLevels[] = {"scalar", "avx2", "avx512", "amx"};
constexpr int kAmxLevel = 3;

// AMX: CPUID.(7,0).EDX bits 22 (AMX-BF16), 24 (AMX-TILE), 25 (AMX-INT8); the OS enables the tile
// state in XCR0 (bits 17 TILECFG, 18 TILEDATA), and Linux grants TILEDATA (xfeature 18) to a process
// that asks with arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023, 18).
void probe_amx(bool& bf16, bool& int8) {
  bf16 = int8 = false;
#if L2E_AMX_BUILT && defined(__linux__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return;  // OSXSAVE: xgetbv works
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24))) return;
  constexpr long kReqXcompPerm = 0x1023, kXfeatureTileData = 18;
  if (syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureTileData) != 0) return;
  bf16 = d & (1u << 22);
  int8 = d & (1u << 25);
#endif
}

// __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
CpuFeatures probe() {
  CpuFeatures f;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = f.avx2 && __builtin_cpu_supports("avx512f");
  f.avx512_bw = f.avx512 && __builtin_cpu_supports("avx512bw");
  f.avx512_bf16 = f.avx512 && __builtin_cpu_supports("avx512bf16");
  f.bf16_dot_full_rate = f.avx512_bf16 && __builtin_cpu_is("amd");
  f.avx512_vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
  f.avx_vnni = f.avx2 && __builtin_cpu_supports("avxvnni");
  // the AMX kernels' epilogues use AVX-512 (F, BW), so AMX counts only on top of it
  if (f.avx512_bw) probe_amx(f.amx_bf16, f.amx_int8);
#endif
  return f;
}

int level_of(const CpuFeatures& f) {
  return (f.amx_bf16 || f.amx_int8) ? kAmxLevel : f.avx512 ? 2 : f.avx2 ? 1 : 0;
}

CpuFeatures capped(CpuFeatures f, int level) {
  if (level < kAmxLevel) f.amx_bf16 = f.amx_int8 = false;
  if (level < 2) f.avx512 = f.avx512_bw = f.avx512_bf16 = f.bf16_dot_full_rate = f.avx512_vnni = false;
  if (level < 1) f.avx2 = f.avx_vnni = false;
  return f;
}

struct Choice {
  int level = 0;
  std::string error;  // non-empty: L2E_CPU_ISA is unusable, and so is every kernel
  CpuFeatures features;
};

Choice choose() {
  Choice c;
  const int best = level_of(cpu_features_uncapped());
  c.level = best;
  const char* env = std::getenv("L2E_CPU_ISA");
  if (env && *env) {
    const std::string want = env;
    bool known = false;
    for (int i = 0; i <= kAmxLevel; i++)
      if (want == kLevels[i]) {
        known = true;
        if (i > best)
          c.error = "L2E_CPU_ISA=" + want + ": this CPU does not support " + want + " (its best is " +
                    kLevels[best] + ")";
        else
          c.level = i;
      }
    if (!known)
      c.error = "L2E_CPU_ISA=" + want + ": unknown instruction set (expected scalar, avx2, avx512 or amx)";
  }
  c.features = capped(cpu_features_uncapped(), c.level);
  return c;
}

const Choice& choice() {
  static const Choice c = choose();
  if (!c.error.empty()) throw Error(c.error);
  return c;
}

Isa vector_isa(int level) { return static_cast<Isa>(level < kAmxLevel ? level : kAmxLevel - 1); }

}  // namespace

const char* isa_name(Isa isa) { return kIsaNames[static_cast<int>(isa)]; }

const CpuFeatures& cpu_features_uncapped() {
  static const CpuFeatures f = probe();
  return f;
}

Isa best_isa() { return vector_isa(level_of(cpu_features_uncapped())); }

Isa active_isa() { return vector_isa(choice().level); }

const char* active_level() { return kLevels[choice().level]; }

const char* best_level() { return kLevels[level_of(cpu_features_uncapped())]; }

bool isa_allows(Isa level) { return level <= active_isa(); }

const CpuFeatures& cpu_features() { return choice().features; }

}  // namespace cpu
}  // namespace l2e
