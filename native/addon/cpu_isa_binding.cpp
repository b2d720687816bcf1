// cpuIsa() -> {isa, best, gemm, features, cpu}: the instruction-set level the CPU kernels use
// (cpu/isa.h; L2E_CPU_ISA sets it; "amx" is avx512 plus the tile unit), the CPU's best, the fp32
// GEMM micro-kernel in use ("avx512" under amx), and the feature
// flags (capped by the level, and as the CPU has them). Loading the addon checks L2E_CPU_ISA, so an
// unknown or unsupported value fails the load with its message rather than a kernel later.
#include <napi.h>

#include "addon/registry.h"
#include "cpu/gemm.h"
#include "cpu/isa.h"

namespace l2e {
namespace {

Napi::Object features_js(Napi::Env env, const cpu::CpuFeatures& f) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("avx2", f.avx2);
  o.Set("avx512", f.avx512);
  o.Set("avx512Bf16", f.avx512_bf16);
  o.Set("bf16DotFullRate", f.bf16_dot_full_rate);
  o.Set("avx512Vnni", f.avx512_vnni);
  o.Set("avxVnni", f.avx_vnni);
  o.Set("amxBf16", f.amx_bf16);
  o.Set("amxInt8", f.amx_int8);
  return o;
}

Napi::Value CpuIsaJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("isa", cpu::active_level());
  o.Set("best", cpu::best_level());
  o.Set("gemm", gemm_kernel_name());
  o.Set("features", features_js(env, cpu::cpu_features()));
  o.Set("cpu", features_js(env, cpu::cpu_features_uncapped()));
  return o;
}

void register_cpu_isa(Napi::Env env, Napi::Object exports) {
  try {
    cpu::active_isa();
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  exports.Set("cpuIsa", Napi::Function::New(env, CpuIsaJs, "cpuIsa"));
}

}  // namespace

L2E_REGISTER(cpu_isa, register_cpu_isa);

}  // namespace l2e
