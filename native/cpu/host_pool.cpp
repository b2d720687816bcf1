// The CPU backend's tensor memory (rules and reasons in host_pool.h).
#include "cpu/host_pool.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "core/host_memory.h"
#include "core/tensor.h"

namespace l2e {
namespace {

std::atomic<uint64_t> g_segment_maps{0}, g_held_bytes{0};

ArenaSource mapped_segments() {
  return ArenaSource{[](size_t bytes) -> uintptr_t {
                       void* p = nullptr;
                       try {
                         p = host_alloc(bytes, "a tensor");
                       } catch (const Error&) {
                         return 0;  // the arena gives back its free segments and asks once more
                       }
                       g_segment_maps.fetch_add(1, std::memory_order_relaxed);
                       g_held_bytes.fetch_add(bytes, std::memory_order_relaxed);
                       return reinterpret_cast<uintptr_t>(p);
                     },
                     [](uintptr_t p, size_t bytes) {
                       host_free(reinterpret_cast<void*>(p), bytes);
                       g_held_bytes.fetch_sub(bytes, std::memory_order_relaxed);
                     }};
}

// L2E_CPU_POOL: unset or empty -> the pool holds while training, "off" -> never
bool pool_enabled() {
  const char* v = std::getenv("L2E_CPU_POOL");
  if (!v || !*v) return true;
  if (std::string(v) == "off") return false;
  throw Error(std::string("L2E_CPU_POOL=") + v + ": expected off (each tensor mapped on its own) or unset");
}

ArenaOptions host_arena() {
  ArenaOptions o;
  o.release_before_growing = true;  // (block_arena.h) the pool's segments stay near its live peak
  return o;
}

}  // namespace

HostPool::HostPool()
    : enabled_(pool_enabled() && host_alloc_maps(kHostMapBytes)), arena_(mapped_segments(), host_arena()) {}

void* HostPool::alloc(size_t bytes) {
  std::lock_guard<std::mutex> lk(mu_);
  if (!holding_ || !host_alloc_maps(bytes)) return host_alloc(bytes, "a tensor");
  const uintptr_t p = arena_.alloc(bytes);
  if (!p) throw Error("out of host memory allocating " + format_bytes(arena_.last_segment_request()) + " for a tensor");
  return reinterpret_cast<void*>(p);
}

void HostPool::free(void* p, size_t bytes) {
  if (!p) return;
  std::lock_guard<std::mutex> lk(mu_);
  if (arena_.free(reinterpret_cast<uintptr_t>(p)) == 0) return host_free(p, bytes);  // not the arena's
  if (!holding_) arena_.release_cached();
}

void HostPool::hold(bool on) {
  std::lock_guard<std::mutex> lk(mu_);
  holding_ = on && enabled_;
  if (!holding_) arena_.release_cached();
}

size_t HostPool::held_free_bytes() const {
  std::lock_guard<std::mutex> lk(mu_);
  return arena_.stats().reserved - arena_.stats().live;
}

HostPoolCounts host_pool_counts() {
  return HostPoolCounts{g_segment_maps.load(std::memory_order_relaxed), g_held_bytes.load(std::memory_order_relaxed)};
}

}  // namespace l2e
