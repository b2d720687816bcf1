// The CPU backend's tensor memory. Each tensor is host_alloc'd (core/host_memory.h: from 1 MiB up a
// mapping of its own, given back whole when freed), except while the pool holds freed memory
// (hold(true): the model has a training state). Then tensors from 1 MiB up are carved from mapped
// segments by a block arena (core/block_arena.h: its split, coalesce and best-fit rules) and a freed
// one stays mapped for the next step to reuse: a training step's activations come and go every step
// at lengths that change, and mapping them afresh each time had the kernel fault in and zero every
// page again (README, Building: the CPU bench's training step about 1.4x faster on memory kept).
// hold(false) gives back every free segment, and each one as it becomes free from then on. While
// holding, the wholly-free segments are given back before a new one is mapped (the arena's
// release_before_growing), so what stays mapped is close to the most a step needed at once.
// Sanitizer builds never hold (host_alloc takes malloc's memory there, so ASan sees each tensor), nor
// does L2E_CPU_POOL=off (the policy before the pool, for comparison; any other non-empty value is an
// error when the pool is made). Thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "core/block_arena.h"

namespace l2e {

class HostPool {
 public:
  HostPool();
  void* alloc(size_t bytes);
  void free(void* p, size_t bytes);
  void hold(bool on);
  // bytes in free blocks of held segments: mapped and resident, yet this pool's to hand out again
  size_t held_free_bytes() const;

 private:
  mutable std::mutex mu_;
  bool enabled_;  // may hold: not L2E_CPU_POOL=off, not a sanitizer build
  bool holding_ = false;
  BlockArena arena_;
};

// Every HostPool's segments mapped so far and the bytes they hold now, for tests.
struct HostPoolCounts {
  uint64_t segment_maps = 0;
  uint64_t held_bytes = 0;
};
HostPoolCounts host_pool_counts();

}  // namespace l2e
