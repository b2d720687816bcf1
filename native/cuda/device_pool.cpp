// Caching device allocator (see device_pool.h).
#include "cuda/device_pool.h"

#include <cstdlib>
#include <string>

#include "core/backend.h"
#include "cuda/cuda_check.h"

namespace l2e {
namespace cuda {

std::atomic<uint64_t> g_device_mallocs{0};
// bytes in every pool's segments now, and their peak (since the last cuda_pool_peak_reserved(true))
std::atomic<uint64_t> g_reserved_now{0}, g_reserved_peak{0};

namespace {
ArenaOptions arena_options(bool split) {
  ArenaOptions o;
#ifdef L2E_CUDA_EMULATION
  // The emulator puts a guard page after each cudaMalloc to catch overruns: a block carved from a
  // larger segment would have its neighbour there instead, so every block keeps its own allocation
  // of exactly the requested bytes (16-byte multiples).
  (void)split;
  o.split = false;
  o.exact_sizes = true;
#else
  o.split = split;
#endif
  return o;
}
}  // namespace

bool DevicePool::split_from_env() {
  const char* v = std::getenv("L2E_CUDA_POOL");
  if (!v || !*v) return true;
  if (std::string(v) == "nosplit") return false;
  throw Error(std::string("L2E_CUDA_POOL=") + v + ": expected nosplit (each block its own cudaMalloc) or unset");
}

DevicePool::DevicePool(cudaStream_t s, bool split)
    : stream_(s),
      arena_(ArenaSource{[this](size_t bytes) -> uintptr_t {
                           void* p = nullptr;
                           g_device_mallocs.fetch_add(1, std::memory_order_relaxed);
                           const cudaError_t e = cudaMalloc(&p, bytes);
                           if (e == cudaSuccess) return reinterpret_cast<uintptr_t>(p);
                           cudaGetLastError();  // clear it; the arena releases cached segments and retries once
                           last_error_ = e;
                           return 0;
                         },
                         [this](uintptr_t addr, size_t) {
                           cudaStreamSynchronize(stream_);  // its blocks may still be in use by queued kernels
                           cudaFree(reinterpret_cast<void*>(addr));
                         }},
             arena_options(split)) {}

// adds the change of this pool's reserved bytes to the process's total and its peak
void DevicePool::report_reserved() {
  const size_t now = arena_.stats().reserved;
  if (now == reported_) return;
  const uint64_t total = g_reserved_now.fetch_add(now - reported_, std::memory_order_relaxed) + (now - reported_);
  reported_ = now;
  for (uint64_t peak = g_reserved_peak.load(std::memory_order_relaxed); total > peak;)
    if (g_reserved_peak.compare_exchange_weak(peak, total, std::memory_order_relaxed)) break;
}

void* DevicePool::alloc(size_t bytes) {
  const uintptr_t p = arena_.alloc(bytes);
  const ArenaStats& st = arena_.stats();
  report_reserved();
  if (!p) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error(device_oom_message(arena_.last_segment_request(), free_b, total_b, st.live, cudaGetErrorString(last_error_)));
  }
  return reinterpret_cast<void*>(p);
}

void DevicePool::free(void* p) {
  if (!p) return;
  const size_t bytes = arena_.free(reinterpret_cast<uintptr_t>(p));
#ifdef L2E_CUDA_EMULATION
  if (bytes) cudaMemsetAsync(p, 0xff, bytes, stream_);  // a reused block reads as NaN until written
#else
  (void)bytes;
#endif
}

DevicePool::~DevicePool() {
  cudaStreamSynchronize(stream_);
  g_reserved_now.fetch_sub(reported_, std::memory_order_relaxed);  // the arena frees every segment next
}

}  // namespace cuda

uint64_t cuda_pool_malloc_count() { return cuda::g_device_mallocs.load(std::memory_order_relaxed); }
uint64_t cuda_pool_peak_reserved(bool reset) {
  const uint64_t peak = cuda::g_reserved_peak.load(std::memory_order_relaxed);
  if (reset) cuda::g_reserved_peak.store(cuda::g_reserved_now.load(std::memory_order_relaxed), std::memory_order_relaxed);
  return peak;
}
}  // namespace l2e
