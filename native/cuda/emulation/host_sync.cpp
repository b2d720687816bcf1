// The CUDA emulation build's pinned host memory and events (see cuda_runtime_api.h), and the count of
// calls that would make the host wait for a real GPU (the test of "no synchronisation inside a
// training step but the loss read-back", test/gpu/step-sync.test.ts).
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>

#include "cuda_runtime_api.h"

namespace l2e {
namespace emu {
namespace {
std::atomic<unsigned long long> g_device_to_host{0}, g_synchronize{0}, g_uploads{0}, g_pageable_uploads{0};
std::mutex g_pinned_mu;
std::map<const char*, size_t> g_pinned;  // cudaHostAlloc's blocks: start -> bytes
}  // namespace

HostSyncCounts host_sync_counts() {
  return {g_device_to_host.load(), g_synchronize.load(), g_uploads.load(), g_pageable_uploads.load()};
}
void count_device_to_host() { g_device_to_host++; }
void count_synchronize() { g_synchronize++; }
bool pinned_range(const void* src, size_t bytes) {
  const char* p = static_cast<const char*>(src);
  std::lock_guard<std::mutex> lock(g_pinned_mu);
  auto it = g_pinned.upper_bound(p);  // the first block starting after p; the one before may hold it
  return it != g_pinned.begin() && p + bytes <= std::prev(it)->first + std::prev(it)->second;
}

void count_upload(const void* src, size_t bytes) {
  g_uploads++;
  if (!pinned_range(src, bytes)) g_pageable_uploads++;
}

}  // namespace emu
}  // namespace l2e

struct CUevent_st {
  bool recorded = false;
  std::chrono::steady_clock::time_point at;
};

// After a kernel failed while running, each call returns its error (runtime.cpp, sticky_error); the
// ones that release something release it all the same.
using l2e::emu::sticky_error;
using l2e::emu::synchronized_error;

cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned) {
  *p = nullptr;
  if (const cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  *p = std::malloc(bytes == 0 ? 1 : bytes);
  if (!*p) return cudaErrorMemoryAllocation;
  std::lock_guard<std::mutex> lock(l2e::emu::g_pinned_mu);
  l2e::emu::g_pinned[static_cast<const char*>(*p)] = bytes;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
  {
    std::lock_guard<std::mutex> lock(l2e::emu::g_pinned_mu);
    l2e::emu::g_pinned.erase(static_cast<const char*>(p));
  }
  std::free(p);
  return sticky_error();
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) {
  *e = nullptr;
  if (const cudaError_t s = sticky_error(); s != cudaSuccess) return s;
  *e = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete e;
  return sticky_error();
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  if (const cudaError_t s = sticky_error(); s != cudaSuccess) return s;
  if (!e) return cudaErrorInvalidValue;
  e->recorded = true;
  e->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}
// Work is done when its call returns: a recorded event is complete (and so is an unrecorded one, as in CUDA).
cudaError_t cudaEventQuery(cudaEvent_t e) {
  if (const cudaError_t s = synchronized_error(); s != cudaSuccess) return s;
  return e ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  l2e::emu::count_synchronize();
  if (const cudaError_t s = synchronized_error(); s != cudaSuccess) return s;
  return e ? cudaSuccess : cudaErrorInvalidValue;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (const cudaError_t s = sticky_error(); s != cudaSuccess) return s;
  if (!start || !end || !start->recorded || !end->recorded) return cudaErrorInvalidValue;
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}
