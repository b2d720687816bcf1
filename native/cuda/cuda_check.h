// Turning CUDA runtime failures into l2e::Error (never abort): every runtime call and every kernel
// launch of the CUDA backend goes through L2E_CUDA_CHECK / l2e::cuda::check_launch.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "core/tensor.h"

namespace l2e {
namespace cuda {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

// After a <<<...>>> launch: configuration errors show up here, execution errors at the next sync.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

}  // namespace cuda
}  // namespace l2e

#define L2E_CUDA_CHECK(call) ::l2e::cuda::check((call), #call)
