// The census (census.h) for the tests (emulation build only; test/gpu/emulation-census.test.ts):
//   cudaEmulationCensus() -> { [kernel]: { launches, mmaFlops, ldmatrixMatrices, ldmatrixWavefronts } }
//     every kernel's counts since the last call, which clears them;
//   cudaEmulationLdmatrixBanks(pattern) -> { matrices, wavefronts }: one ldmatrix .x4 of a warp whose
//     row addresses follow `pattern`, the bank model's check (the addresses of matrix m = 0..3, row
//     r = 0..7, in bytes of shared memory):
//       stride128  16 m + 128 r             a row of 64 bf16 per 128 bytes: 8 rows in one bank group
//       pairs      16 m + 128 (r / 2)       4 distinct rows, each read twice, in one bank group
//       broadcast  0                        one row for every lane
//       stride144  1152 m + 144 r           padded rows: 8 bank groups
//       xor        128 r + 16 ((m ^ r) % 8)  a 16-byte chunk XOR row swizzle: 8 bank groups
//     (it clears the census first, and takes it after).
#include <napi.h>

#include <string>

#include "addon/registry.h"
#include "census.h"
#include "cuda_runtime.h"
#include "cuda/device_utils.cuh"
#include "ptx.h"

namespace l2e {
namespace emu {
namespace {

void ldmatrix_banks_kernel(int pattern) {
  const unsigned lane = threadIdx.x, m = lane / 8, r = lane % 8;
  unsigned offset = 0;
  if (pattern == 0) offset = 16 * m + 128 * r;
  if (pattern == 1) offset = 16 * m + 128 * (r / 2);
  if (pattern == 3) offset = 1152 * m + 144 * r;
  if (pattern == 4) offset = 128 * r + 16 * ((m ^ r) % 8);
  const char* base = static_cast<const char*>(dynamic_shared());
  uint32_t d[4];
  ptx::ldmatrix_m8n8_b16(d, 4, false, unsigned(shared_offset(base + offset)));
}

Napi::Object entry(Napi::Env env, const KernelCensus& c) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("launches", double(c.launches));
  o.Set("mmaFlops", double(c.mma_flops));
  o.Set("ldmatrixMatrices", double(c.ldmatrix_matrices));
  o.Set("ldmatrixWavefronts", double(c.ldmatrix_wavefronts));
  return o;
}

Napi::Value Census(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  for (const auto& [kernel, c] : census_take()) out.Set(kernel, entry(info.Env(), c));
  return out;
}

Napi::Value LdmatrixBanks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info.Length() > 0 && info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  const char* const patterns[] = {"stride128", "pairs", "broadcast", "stride144", "xor"};
  int pattern = -1;
  for (int i = 0; i < 5; i++)
    if (name == patterns[i]) pattern = i;
  if (pattern < 0) {
    Napi::Error::New(env, "cudaEmulationLdmatrixBanks: unknown pattern '" + name + "' (stride128, pairs, broadcast, stride144, xor)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  census_take();
  L2E_EMU_LAUNCH(ldmatrix_banks_kernel, 1, 32, 8192, nullptr)(pattern);
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    Napi::Error::New(env, std::string("cudaEmulationLdmatrixBanks: ") + cudaGetErrorString(e)).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const KernelCensus c = census_take()["ldmatrix_banks_kernel"];
  Napi::Object o = Napi::Object::New(env);
  o.Set("matrices", double(c.ldmatrix_matrices));
  o.Set("wavefronts", double(c.ldmatrix_wavefronts));
  return o;
}

void register_census(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaEmulationCensus", Napi::Function::New(env, Census, "cudaEmulationCensus"));
  exports.Set("cudaEmulationLdmatrixBanks", Napi::Function::New(env, LdmatrixBanks, "cudaEmulationLdmatrixBanks"));
}

}  // namespace

L2E_REGISTER(cuda_emulation_census, register_census);

}  // namespace emu
}  // namespace l2e
