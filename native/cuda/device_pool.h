// A caching device allocator for one backend (one stream). cudaMalloc / cudaFree are slow and
// cudaFree synchronises the device, while the model re-allocates activations whenever the batch
// shape changes; freed blocks are therefore kept and reused by size. Reuse is safe because every
// kernel of the backend runs on its one stream, in order. When cudaMalloc fails the cache is
// released and the allocation retried once. Everything is returned to CUDA on destruction.
#pragma once
#include <cuda_runtime_api.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <unordered_map>

namespace l2e {
namespace cuda {

// cudaMalloc calls made by every pool of the process (cuda_pool_malloc_count() in core/backend.h)
extern std::atomic<uint64_t> g_device_mallocs;

class DevicePool {
 public:
  explicit DevicePool(cudaStream_t s) : stream_(s) {}
  ~DevicePool();
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  void* alloc(size_t bytes);   // throws Error on out-of-memory
  void free(void* p);          // back to the cache
  void release_cached();       // cudaFree every cached block
  size_t live_bytes() const { return live_bytes_; }
  size_t cached_bytes() const { return cached_bytes_; }

 private:
  static size_t rounded(size_t bytes);
  cudaStream_t stream_;
  std::multimap<size_t, void*> cache_;      // size -> block
  std::unordered_map<void*, size_t> live_;  // block -> size
  size_t live_bytes_ = 0, cached_bytes_ = 0;
};

}  // namespace cuda
}  // namespace l2e
