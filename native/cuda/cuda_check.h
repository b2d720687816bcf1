// Turning CUDA runtime failures into l2e::Error (never abort): every runtime call and every kernel
// launch of the CUDA backend goes through L2E_CUDA_CHECK / l2e::cuda::check_launch.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/tensor.h"

namespace l2e {
namespace cuda {

// The errors of a kernel that failed while running, of which the runtime says "any further CUDA work
// will return the same error. To continue using CUDA, the process must be terminated and relaunched"
// (CUDA Runtime API, enum cudaError): a message that says so, so that a user restarts, not retries.
inline bool context_lost(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchTimeout:
    case cudaErrorAssert:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchFailure:
      return true;
    default:
      return false;
  }
}

inline void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::string message = std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e);
  if (context_lost(e)) message += " (after a kernel fails, every CUDA call of this process fails: restart it to use the GPU)";
  (void)cudaGetLastError();  // reported here, so not a second time by the next launch's check
  throw Error(message);
}

// L2E_CUDA_SYNC=1: synchronise after every launch, so that an execution error names its kernel.
inline bool sync_after_launch() {
  static const bool on = [] {
    const char* v = std::getenv("L2E_CUDA_SYNC");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

// After a launch: configuration errors show up here, execution errors at the next sync (at once
// with L2E_CUDA_SYNC=1).
inline void check_launch(const char* kernel) {
  check(cudaGetLastError(), kernel);
  if (sync_after_launch()) check(cudaDeviceSynchronize(), kernel);
}

}  // namespace cuda
}  // namespace l2e

#define L2E_CUDA_CHECK(call) ::l2e::cuda::check((call), #call)
