// Addon entry point: every binding file registered itself through L2E_REGISTER.
#include <napi.h>

#include "addon/registry.h"

namespace l2e {

std::vector<RegisterFn>& registry() {
  static std::vector<RegisterFn> fns;
  return fns;
}

}  // namespace l2e

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  for (auto fn : l2e::registry()) fn(env, exports);
  return exports;
}

NODE_API_MODULE(l2e, Init)
