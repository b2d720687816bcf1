// cudaStatus() -> {compiled, usable, emulated, reason, devices, name?, computeCapability?, freeBytes?, totalBytes?}:
// the one way to ask whether this binary can run the CUDA backend here (core/backend.h cuda_status()).
// Never throws for a missing GPU or a CPU-only build: usable is false and reason says why. When
// usable, the first device's name, compute capability and free / total memory come with it.
#include <napi.h>

#include "addon/registry.h"
#include "core/backend.h"

namespace l2e {
namespace {

Napi::Value CudaStatusJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  CudaStatus s;
  try {
    s = cuda_status();
  } catch (const std::exception& e) {
    s.usable = false;
    s.reason = e.what();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", s.compiled);
  o.Set("usable", s.usable);
  o.Set("emulated", s.emulated);
  o.Set("reason", s.reason);
  o.Set("devices", s.devices);
  if (s.usable) {
    o.Set("name", s.name);
    o.Set("computeCapability", s.compute_capability);
    o.Set("freeBytes", double(s.free_bytes));
    o.Set("totalBytes", double(s.total_bytes));
  }
  return o;
}

void register_cuda_status(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaStatus", Napi::Function::New(env, CudaStatusJs, "cudaStatus"));
}

}  // namespace

L2E_REGISTER(cuda_status, register_cuda_status);

}  // namespace l2e
