// cudaStatus() -> {compiled, usable, emulated, reason}: whether this binary can run the CUDA backend here.
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
    s.reason = e.what();
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", s.compiled);
  o.Set("usable", s.usable);
  o.Set("emulated", s.emulated);
  o.Set("reason", s.reason);
  return o;
}

void register_device(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaStatus", Napi::Function::New(env, CudaStatusJs));
}

}  // namespace

L2E_REGISTER(device, register_device);

}  // namespace l2e
