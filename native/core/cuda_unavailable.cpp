// Without the CUDA target (native/cuda), asking for the CUDA backend is a clear error.
#include "core/backend.h"

#ifndef L2E_WITH_CUDA
namespace l2e {
CudaStatus cuda_status() {
  CudaStatus s;
  s.reason = "this build has no CUDA backend";
  return s;
}

uint64_t cuda_pool_malloc_count() { return 0; }
uint64_t cuda_pool_peak_reserved(bool) { return 0; }
uint64_t cuda_pool_peak_live(bool) { return 0; }

std::vector<std::string> cuda_attention_variants() { return {}; }

std::unique_ptr<Backend> make_cuda_backend(const std::string&, const std::string&) {
  throw Error(
      "device 'cuda' is not available: this build of llama2-embedding has no CUDA backend "
      "(rebuild with nvcc on the PATH: `L2E_CUDA=1 npm run build:native`)");
}
}  // namespace l2e
#endif
