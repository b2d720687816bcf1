// A caching device allocator for one backend (one stream). cudaMalloc / cudaFree are slow and
// cudaFree synchronises the device, while the model re-allocates activations whenever the batch
// shape changes; freed blocks are therefore kept in a BlockArena (core/block_arena.h: segments from
// cudaMalloc carved by best fit, split, coalesced on free, small and large pools) and reused. Reuse
// is safe because every kernel of the backend runs on its one stream, in order. When cudaMalloc fails
// the wholly-free segments are released and the allocation retried once. Everything is returned to
// CUDA on destruction. L2E_CUDA_POOL=nosplit: every block its own cudaMalloc, reused by size (the
// policy before the arena; for before/after measurements).
#pragma once
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "core/block_arena.h"

namespace l2e {
namespace cuda {

// cudaMalloc calls made by every pool of the process (cuda_pool_malloc_count() in core/backend.h)
extern std::atomic<uint64_t> g_device_mallocs;

class DevicePool {
 public:
  // split: false for no-split mode; the emulation build always uses it (see device_pool.cpp)
  DevicePool(cudaStream_t s, bool split);
  ~DevicePool();
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  // L2E_CUDA_POOL: unset or empty -> true (split), "nosplit" -> false; anything else throws Error
  static bool split_from_env();

  void* alloc(size_t bytes);  // throws Error on out-of-memory
  void free(void* p);         // back to the arena (a pointer not from this pool is ignored)

 private:
  cudaStream_t stream_;
  void report();
  cudaError_t last_error_ = cudaSuccess;  // of the last failed cudaMalloc
  size_t reported_reserved_ = 0;           // reserved and live bytes added to the process's totals
  size_t reported_live_ = 0;
  BlockArena arena_;
};

}  // namespace cuda
}  // namespace l2e
