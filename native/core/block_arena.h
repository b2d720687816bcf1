// A splitting, coalescing block arena over address ranges (host-only logic; cuda/device_pool.h puts
// it on cudaMalloc / cudaFree, cpu/host_pool.h on host mappings while a model trains). Segments come
// from a source (allocate(bytes) -> address, 0 on failure; release(address, bytes)) and are carved
// into blocks. The rules and why:
//  - Alignment: every block size is a multiple of kAlign (512 B), so every block starts 512-aligned
//    when its segment does (cudaMalloc's are 256-aligned or better). >= 256 B keeps vector loads,
//    cp.async and TMA happy with any offset the arena hands out.
//  - Two pools: requests <= kSmallRequest (1 MiB) are carved from kSmallSegment (2 MiB) segments;
//    larger ones from the large pool. Small, short-lived tensors (scalars, norms, descriptors)
//    then never pin a large segment, and the large pool is not shredded into slivers.
//  - Large segments: the request rounded up to kGranule (2 MiB), taken only when no free large
//    block fits (a request larger than any free block gets its own segment of the rounded size).
//  - Best fit: the smallest free block of the request's pool that holds it (ties: lowest address),
//    so large free blocks stay whole for large requests.
//  - Split when the remainder is worth keeping: in the small pool any remainder (>= kAlign); in the
//    large pool a remainder > kSmallRequest (a smaller one could never serve a large request alone,
//    so it stays part of the block instead of becoming a sliver).
//  - Coalesce on free: a freed block merges with free neighbours of the same segment (never across
//    segments: two cudaMalloc ranges may be adjacent but are freed separately).
//  - On source failure: release every wholly-free segment and retry once; alloc returns 0 when that
//    fails too (the caller words the error).
//  - release_before_growing: every wholly-free segment is released before a new one is taken, so the
//    segments hold little more than the live blocks' peak; without it a run of growing requests keeps
//    the earlier, smaller segments beside the new ones (a training-like trace of changing lengths:
//    1.64x the live peak reserved, 1.04x with it, test/block-arena). The host pool's policy
//    (cpu/host_pool.h): a mapping is cheap to make and give back; cudaFree synchronises the device.
//  - No-split mode (split = false): every block is its own segment and a free block is reused only
//    for a request of its exact size or, above kSmallRequest, one at most 1/8 smaller (the policy
//    before this arena: L2E_CUDA_POOL=nosplit, and the emulation build, whose cudaMalloc puts a guard
//    page after each allocation). exact_sizes: sizes rounded to 16 B, not to the size classes
//    (powers of two to 1 MiB, 2 MiB multiples above), so the guard follows the requested bytes.
// Not thread-safe: one arena per backend, used from one thread (the stream's order makes reuse safe).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace l2e {

struct ArenaSource {
  std::function<uintptr_t(size_t)> allocate;        // a new segment's address, 0 on failure
  std::function<void(uintptr_t, size_t)> release;   // give a wholly-free segment back
};

struct ArenaOptions {
  bool split = true;         // false: no-split mode (see the header)
  bool exact_sizes = false;  // no-split mode only: 16-byte rounding instead of the size classes
  bool release_before_growing = false;  // release the wholly-free segments before taking a new one
};

struct ArenaStats {
  uint64_t segment_allocs = 0;    // calls to source.allocate (the cudaMalloc count), failed ones included
  uint64_t segment_releases = 0;  // calls to source.release
  size_t reserved = 0, reserved_peak = 0;  // bytes in segments
  size_t live = 0, live_peak = 0;          // bytes in blocks handed out (rounded sizes)
};

// The out-of-memory error of a device pool over an arena: "CUDA out of memory allocating <segment>
// MiB (<free> MiB free of <total> MiB; this model holds <live> MiB): <reason>" (MiB rounded down)
std::string device_oom_message(size_t segment_bytes, size_t free_bytes, size_t total_bytes, size_t live_bytes,
                               const std::string& reason);

class BlockArena {
 public:
  static constexpr size_t kAlign = 512;
  static constexpr size_t kSmallRequest = size_t(1) << 20;
  static constexpr size_t kSmallSegment = size_t(2) << 20;
  static constexpr size_t kGranule = size_t(2) << 20;

  BlockArena(ArenaSource source, ArenaOptions options);
  ~BlockArena();  // releases every segment
  BlockArena(const BlockArena&) = delete;
  BlockArena& operator=(const BlockArena&) = delete;

  uintptr_t alloc(size_t bytes);  // 0 when the source fails even after releasing cached segments
  size_t free(uintptr_t addr);    // the freed block's size; 0 (and nothing done) when not a live block
  void release_cached();          // release every wholly-free segment
  const ArenaStats& stats() const { return stats_; }
  size_t last_segment_request() const { return last_request_; }  // bytes of the last segment asked for
  // "" when the internal invariants hold, else the first one broken (tests call it after every op)
  std::string check() const;

 private:
  struct Block {
    size_t size;
    uintptr_t segment;  // start of its segment
    bool free;
    bool small;         // pool
  };
  using FreeSet = std::set<std::pair<size_t, uintptr_t>>;  // (size, address): best fit by lower_bound
  size_t rounded(size_t bytes) const;
  uintptr_t take(FreeSet& pool, size_t r);
  uintptr_t new_segment(size_t r, bool small);
  FreeSet& pool_of(const Block& b) { return b.small ? small_free_ : large_free_; }

  ArenaSource source_;
  ArenaOptions opt_;
  std::map<uintptr_t, Block> blocks_;     // every block, by address
  std::map<uintptr_t, size_t> segments_;  // start -> bytes
  FreeSet small_free_, large_free_;
  ArenaStats stats_;
  size_t last_request_ = 0;
};

}  // namespace l2e
