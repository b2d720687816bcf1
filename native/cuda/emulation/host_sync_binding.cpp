// cudaEmulationHostSyncs() -> {deviceToHost, synchronize, uploads, pageableUploads}: the emulated runtime's
// counts of calls that make (or may make) the host wait for the device (cuda_runtime_api.h; emulation
// build only; test/gpu/step-sync.test.ts).
#include <napi.h>

#include "addon/registry.h"
#include "cuda_runtime_api.h"

namespace l2e {
namespace emu {
namespace {

Napi::Value HostSyncs(const Napi::CallbackInfo& info) {
  const HostSyncCounts c = host_sync_counts();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("deviceToHost", double(c.device_to_host));
  o.Set("synchronize", double(c.synchronize));
  o.Set("uploads", double(c.uploads));
  o.Set("pageableUploads", double(c.pageable_uploads));
  return o;
}

void register_host_syncs(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaEmulationHostSyncs", Napi::Function::New(env, HostSyncs, "cudaEmulationHostSyncs"));
}

}  // namespace

L2E_REGISTER(cuda_emulation_host_syncs, register_host_syncs);

}  // namespace emu
}  // namespace l2e
