// Caching device allocator (see device_pool.h).
#include "cuda/device_pool.h"

#include "core/backend.h"
#include "cuda/cuda_check.h"

namespace l2e {
namespace cuda {

std::atomic<uint64_t> g_device_mallocs{0};

namespace {
constexpr size_t kSmall = size_t(1) << 20;  // up to 1 MiB: power-of-two classes
constexpr size_t kGranule = size_t(2) << 20;  // above: multiples of 2 MiB
}  // namespace

size_t DevicePool::rounded(size_t bytes) {
#ifdef L2E_CUDA_EMULATION
  // exact sizes (16-byte multiples), so that the emulator's guard page follows the requested bytes
  return (bytes + 15) / 16 * 16;
#endif
  if (bytes <= kSmall) {
    size_t r = 512;
    while (r < bytes) r <<= 1;
    return r;
  }
  return (bytes + kGranule - 1) / kGranule * kGranule;
}

void* DevicePool::alloc(size_t bytes) {
  const size_t r = rounded(bytes);
  // a cached block of this size, or (large sizes) one at most 1/8 larger
  auto it = cache_.lower_bound(r);
  if (it != cache_.end() && (it->first == r || (r > kSmall && it->first <= r + r / 8))) {
    void* p = it->second;
    const size_t sz = it->first;
    cache_.erase(it);
    cached_bytes_ -= sz;
    live_[p] = sz;
    live_bytes_ += sz;
    return p;
  }
  void* p = nullptr;
  g_device_mallocs.fetch_add(1, std::memory_order_relaxed);
  cudaError_t e = cudaMalloc(&p, r);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // clear it, give back the cache and try once more
    release_cached();
    e = cudaMalloc(&p, r);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error("CUDA out of memory allocating " + std::to_string(r >> 20) + " MiB (" + std::to_string(free_b >> 20) +
                " MiB free of " + std::to_string(total_b >> 20) + " MiB; this model holds " +
                std::to_string(live_bytes_ >> 20) + " MiB): " + cudaGetErrorString(e));
  }
  live_[p] = r;
  live_bytes_ += r;
  return p;
}

void DevicePool::free(void* p) {
  if (!p) return;
  auto it = live_.find(p);
  if (it == live_.end()) return;  // not ours: ignore rather than corrupt the cache
#ifdef L2E_CUDA_EMULATION
  cudaMemsetAsync(p, 0xff, it->second, stream_);  // a reused block reads as NaN until written
#endif
  cache_.emplace(it->second, p);
  cached_bytes_ += it->second;
  live_bytes_ -= it->second;
  live_.erase(it);
}

void DevicePool::release_cached() {
  if (cache_.empty()) return;
  cudaStreamSynchronize(stream_);  // blocks may still be in use by queued kernels
  for (auto& [sz, p] : cache_) cudaFree(p);
  cache_.clear();
  cached_bytes_ = 0;
}

DevicePool::~DevicePool() {
  cudaStreamSynchronize(stream_);
  for (auto& [sz, p] : cache_) cudaFree(p);
  for (auto& [p, sz] : live_) cudaFree(p);
  cache_.clear();
  live_.clear();
}

}  // namespace cuda

uint64_t cuda_pool_malloc_count() { return cuda::g_device_mallocs.load(std::memory_order_relaxed); }
}  // namespace l2e
