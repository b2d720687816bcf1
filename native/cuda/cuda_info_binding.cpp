// cudaInfo() -> {usable, emulated, error?, devices, name?, freeBytes?, totalBytes?}: what the GPU tests and
// benchmarks need to know about the device (memory returned after dispose, which card ran).
// Only in CUDA builds; never throws for a missing GPU (usable: false with the reason).
#include <cuda_runtime_api.h>
#include <napi.h>

#include "addon/registry.h"

namespace l2e {
namespace {

Napi::Value CudaInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
#ifdef L2E_CUDA_EMULATION
  o.Set("emulated", true);
#else
  o.Set("emulated", false);
#endif
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    cudaGetLastError();
    o.Set("usable", false);
    o.Set("devices", 0);
    o.Set("error", e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device found");
    return o;
  }
  o.Set("devices", n);
  cudaDeviceProp prop{};
  size_t free_b = 0, total_b = 0;
  e = cudaGetDeviceProperties(&prop, 0);
  if (e == cudaSuccess) e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaMemGetInfo(&free_b, &total_b);
  if (e != cudaSuccess) {
    cudaGetLastError();
    o.Set("usable", false);
    o.Set("error", cudaGetErrorString(e));
    return o;
  }
  o.Set("usable", true);
  o.Set("name", prop.name);
  o.Set("computeCapability", std::to_string(prop.major) + "." + std::to_string(prop.minor));
  o.Set("freeBytes", double(free_b));
  o.Set("totalBytes", double(total_b));
  return o;
}

void register_cuda_info(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaInfo", Napi::Function::New(env, CudaInfo, "cudaInfo"));
}

}  // namespace

L2E_REGISTER(cuda_info, register_cuda_info);

}  // namespace l2e
