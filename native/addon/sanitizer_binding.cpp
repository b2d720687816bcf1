// Only in the sanitizer build (L2E_SANITIZE, build-asan/): sanitizerLeakCheck() runs LeakSanitizer
// now and returns whether it found leaks (each one is printed to stderr). The test setup of
// `npm run test:sanitize` calls it after every test file, after a full GC, so a native object
// (model, training state, k-NN store) left unfreed is named by the file that leaked it.
// sanitizerPlant(kind) plants a bug ("leak", "overflow", "ub") so test/sanitize/ can check that
// each kind is reported and fails the run.
#ifdef L2E_SANITIZE
#include <napi.h>
#include <sanitizer/lsan_interface.h>

#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "addon/registry.h"

namespace l2e {
namespace {

void register_sanitizer(Napi::Env env, Napi::Object exports) {
  exports.Set("sanitizerLeakCheck", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                return Napi::Boolean::New(info.Env(), __lsan_do_recoverable_leak_check() != 0);
              }));
  exports.Set("sanitizerPlant", Napi::Function::New(env, [](const Napi::CallbackInfo& info) -> Napi::Value {
                const std::string kind = info[0].As<Napi::String>().Utf8Value();
                volatile int sink = 0;
                if (kind == "leak") {
                  // on a thread that then ends, so no stale copy of the pointer stays on a live stack
                  std::thread([] { std::memset(std::malloc(4096), 1, 4096); }).join();
                } else if (kind == "overflow") {
                  char* p = static_cast<char*>(std::malloc(16));
                  char out[32];
                  std::memcpy(out, p, 16 + info.Length());  // one byte past the end: heap-buffer-overflow
                  sink = out[0];
                  std::free(p);
                } else if (kind == "ub") {
                  volatile int big = INT_MAX;
                  sink = big + int(info.Length());  // signed overflow
                }
                return Napi::Number::New(info.Env(), sink);
              }));
}

}  // namespace
L2E_REGISTER(sanitizer, register_sanitizer);
}  // namespace l2e
#endif
