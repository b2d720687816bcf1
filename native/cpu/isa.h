// The one CPU instruction-set switch. The CPU is probed once; every SIMD kernel (GEMM micro-kernel,
// AdamW, softmax, ...) asks here which path to take instead of probing for itself, so that one
// override, L2E_CPU_ISA=scalar|avx2|avx512, moves them all together (CI runs the op and gradient
// tests once per level this way, so the scalar fallbacks are tested too).
//
// Levels are ordered: avx512 implies avx2 (AVX2 + FMA) implies scalar. Extra features that some
// kernels may use (bf16 dot products, int8 VNNI) are flags on top of a level, and the override caps
// them too: under L2E_CPU_ISA=avx2 the AVX-512 extensions read as absent.
//
// Adding a kernel: write the variants with __attribute__((target(...))), then pick once, e.g.
//   static const Fn fn = cpu::isa_allows(cpu::Isa::avx512) && cpu::cpu_features().avx512_bf16 ? a : b;
// Adding a level: extend Isa (a vector width) or kLevels (features on top of one) in isa.cpp.
#pragma once

// Whether this compiler has the AMX intrinsics (GCC 11, clang 12): without them the AMX kernels are
// not built and the probe reports no AMX.
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define L2E_AMX_BUILT 1
#else
#define L2E_AMX_BUILT 0
#endif

namespace l2e {
namespace cpu {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

// What the kernels may use: the CPU's features capped by the level in use.
struct CpuFeatures {
  bool avx2 = false;         // AVX2 + FMA
  bool avx512 = false;       // AVX-512 F
  bool avx512_bw = false;    // AVX512_BW (byte/word ops: the bf16 widening kernel)
  bool avx512_bf16 = false;  // AVX512_BF16 (vdpbf16ps)
  // vdpbf16ps at the FMA's issue rate, so twice its flops: taken to be AMD's (measured on Zen 5); on the Intel Xeon
  // measured (gemm_bf16.cpp) it issues at half that rate, no faster than two FMAs
  bool bf16_dot_full_rate = false;
  bool avx512_vnni = false;  // AVX512_VNNI (vpdpbusd on zmm)
  bool avx_vnni = false;     // AVX-VNNI (vpdpbusd, VEX-encoded, ymm)
  bool amx_bf16 = false;     // AMX-TILE + AMX-BF16 (tdpbf16ps), tile registers granted by the OS
  bool amx_int8 = false;     // AMX-TILE + AMX-INT8 (tdpbusd), tile registers granted by the OS
};

// "scalar", "avx2" or "avx512".
const char* isa_name(Isa isa);

// The best vector level this CPU (and OS) runs, ignoring any override.
Isa best_isa();

// The vector level in use: that of L2E_CPU_ISA when set (avx512 for amx), else best_isa(). Decided
// once, on the first call. Throws l2e::Error for an unknown L2E_CPU_ISA value or one this CPU lacks,
// on every call, so the addon's load (which calls it first) fails with that message rather than a
// kernel later.
Isa active_isa();

// The level names, with amx: the one in use ("scalar", "avx2", "avx512" or "amx"; throws as
// active_isa()) and the best this CPU and OS run.
const char* active_level();
const char* best_level();

// Whether kernels may use `level` (level <= active_isa()).
bool isa_allows(Isa level);

// The features of active_isa() (the CPU's own, with everything above the level cleared).
const CpuFeatures& cpu_features();

// The CPU's features without the cap (for reports).
const CpuFeatures& cpu_features_uncapped();

}  // namespace cpu
}  // namespace l2e
