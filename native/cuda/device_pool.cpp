// Caching device allocator (see device_pool.h).
#include "cuda/device_pool.h"

#include <cstdlib>
#include <string>

#include "core/backend.h"
#include "cuda/cuda_check.h"

namespace l2e {
namespace cuda {

std::atomic<uint64_t> g_device_mallocs{0};

namespace {
// A byte count over every pool of the process, now and its peak since the last read(true).
struct PeakCounter {
  std::atomic<uint64_t> now{0}, peak{0};
  void add(size_t before, size_t after) {  // the change wraps modulo 2^64 when it is a decrease
    const uint64_t change = uint64_t(after) - uint64_t(before);
    const uint64_t total = now.fetch_add(change, std::memory_order_relaxed) + change;
    for (uint64_t p = peak.load(std::memory_order_relaxed); total > p;)
      if (peak.compare_exchange_weak(p, total, std::memory_order_relaxed)) break;
  }
  uint64_t read(bool reset) {
    const uint64_t p = peak.load(std::memory_order_relaxed);
    if (reset) peak.store(now.load(std::memory_order_relaxed), std::memory_order_relaxed);
    return p;
  }
};
// bytes in the pools' cudaMalloc'd segments (cached free blocks included), and in blocks handed out
PeakCounter g_reserved, g_live;

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

// adds the change of this pool's reserved and live bytes to the process's totals and their peaks
void DevicePool::report() {
  const ArenaStats& st = arena_.stats();
  if (st.reserved != reported_reserved_) g_reserved.add(reported_reserved_, st.reserved);
  if (st.live != reported_live_) g_live.add(reported_live_, st.live);
  reported_reserved_ = st.reserved;
  reported_live_ = st.live;
}

void* DevicePool::alloc(size_t bytes) {
  const uintptr_t p = arena_.alloc(bytes);
  const ArenaStats& st = arena_.stats();
  report();
  if (!p) {
    // not a full device: an earlier kernel's failure, which every call now returns (cudaMemGetInfo too)
    if (last_error_ != cudaErrorMemoryAllocation) check(last_error_, "cudaMalloc");
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw Error(device_oom_message(arena_.last_segment_request(), free_b, total_b, st.live, cudaGetErrorString(last_error_)));
  }
  return reinterpret_cast<void*>(p);
}

void DevicePool::free(void* p) {
  if (!p) return;
  const size_t bytes = arena_.free(reinterpret_cast<uintptr_t>(p));
  report();
#ifdef L2E_CUDA_EMULATION
  if (bytes) cudaMemsetAsync(p, 0xff, bytes, stream_);  // a reused block reads as NaN until written
#else
  (void)bytes;
#endif
}

DevicePool::~DevicePool() {
  cudaStreamSynchronize(stream_);
  g_reserved.add(reported_reserved_, 0);  // the arena frees every segment next
  g_live.add(reported_live_, 0);
}

}  // namespace cuda

uint64_t cuda_pool_malloc_count() { return cuda::g_device_mallocs.load(std::memory_order_relaxed); }
uint64_t cuda_pool_peak_reserved(bool reset) { return cuda::g_reserved.read(reset); }
uint64_t cuda_pool_peak_live(bool reset) { return cuda::g_live.read(reset); }
}  // namespace l2e
