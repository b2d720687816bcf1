// Splitting, coalescing block arena (rules and reasons in block_arena.h).
#include "core/block_arena.h"

#include <algorithm>

namespace l2e {

namespace {
size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }
}  // namespace

std::string device_oom_message(size_t segment_bytes, size_t free_bytes, size_t total_bytes, size_t live_bytes,
                               const std::string& reason) {
  return "CUDA out of memory allocating " + std::to_string(segment_bytes >> 20) + " MiB (" + std::to_string(free_bytes >> 20) +
         " MiB free of " + std::to_string(total_bytes >> 20) + " MiB; this model holds " + std::to_string(live_bytes >> 20) +
         " MiB): " + reason;
}

BlockArena::BlockArena(ArenaSource source, ArenaOptions options) : source_(std::move(source)), opt_(options) {}

BlockArena::~BlockArena() {
  for (auto& [addr, bytes] : segments_) source_.release(addr, bytes);
}

size_t BlockArena::rounded(size_t bytes) const {
  bytes = std::max<size_t>(bytes, 1);
  if (opt_.split) return round_up(bytes, kAlign);
  if (opt_.exact_sizes) return round_up(bytes, 16);
  if (bytes <= kSmallRequest) {
    size_t r = kAlign;
    while (r < bytes) r <<= 1;
    return r;
  }
  return round_up(bytes, kGranule);
}

// The best-fitting free block of `pool` for r bytes (no-split mode: only one of the same size, or
// above kSmallRequest at most 1/8 larger), made live and split when the remainder is worth keeping.
uintptr_t BlockArena::take(FreeSet& pool, size_t r) {
  auto it = pool.lower_bound({r, 0});
  if (it == pool.end()) return 0;
  if (!opt_.split && !(it->first == r || (r > kSmallRequest && it->first <= r + r / 8))) return 0;
  const uintptr_t addr = it->second;
  pool.erase(it);
  Block& b = blocks_.at(addr);
  const size_t rest = b.size - r;
  if (opt_.split && (b.small ? rest >= kAlign : rest > kSmallRequest)) {
    blocks_.emplace(addr + r, Block{rest, b.segment, true, b.small});
    pool.insert({rest, addr + r});
    b.size = r;
  }
  b.free = false;
  stats_.live += b.size;
  stats_.live_peak = std::max(stats_.live_peak, stats_.live);
  return addr;
}

// A new segment for r bytes as one free block of its pool, then taken; 0 when the source fails
// twice (the second time after the wholly-free segments were released).
uintptr_t BlockArena::new_segment(size_t r, bool small) {
  const size_t bytes = !opt_.split ? r : small ? kSmallSegment : round_up(r, kGranule);
  last_request_ = bytes;
  if (opt_.release_before_growing) release_cached();
  stats_.segment_allocs++;
  uintptr_t addr = source_.allocate(bytes);
  if (!addr) {
    release_cached();
    stats_.segment_allocs++;
    addr = source_.allocate(bytes);
    if (!addr) return 0;
  }
  segments_.emplace(addr, bytes);
  stats_.reserved += bytes;
  stats_.reserved_peak = std::max(stats_.reserved_peak, stats_.reserved);
  blocks_.emplace(addr, Block{bytes, addr, true, small});
  FreeSet& pool = small ? small_free_ : large_free_;
  pool.insert({bytes, addr});
  return take(pool, r);
}

uintptr_t BlockArena::alloc(size_t bytes) {
  const size_t r = rounded(bytes);
  const bool small = r <= kSmallRequest;
  if (uintptr_t p = take(small ? small_free_ : large_free_, r)) return p;
  return new_segment(r, small);
}

size_t BlockArena::free(uintptr_t addr) {
  auto it = blocks_.find(addr);
  if (it == blocks_.end() || it->second.free) return 0;
  const size_t size = it->second.size;
  stats_.live -= size;
  it->second.free = true;
  FreeSet& pool = pool_of(it->second);
  // merge with the free neighbours of the same segment
  auto next = std::next(it);
  if (next != blocks_.end() && next->second.segment == it->second.segment && next->second.free) {
    pool.erase({next->second.size, next->first});
    it->second.size += next->second.size;
    blocks_.erase(next);
  }
  if (it != blocks_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.segment == it->second.segment && prev->second.free) {
      pool.erase({prev->second.size, prev->first});
      prev->second.size += it->second.size;
      blocks_.erase(it);
      it = prev;
    }
  }
  pool.insert({it->second.size, it->first});
  return size;
}

void BlockArena::release_cached() {
  for (auto s = segments_.begin(); s != segments_.end();) {
    auto b = blocks_.find(s->first);
    if (b != blocks_.end() && b->second.free && b->second.size == s->second) {
      pool_of(b->second).erase({b->second.size, b->first});
      blocks_.erase(b);
      source_.release(s->first, s->second);
      stats_.segment_releases++;
      stats_.reserved -= s->second;
      s = segments_.erase(s);
    } else {
      ++s;
    }
  }
}

std::string BlockArena::check() const {
  size_t seen = 0, reserved = 0, live = 0, small_free = 0, large_free = 0;
  for (auto& [start, bytes] : segments_) {
    reserved += bytes;
    uintptr_t at = start;
    bool prev_free = false;
    for (auto b = blocks_.find(start); at < start + bytes; ++b) {
      const std::string where = "block at segment offset " + std::to_string(at - start);
      if (b == blocks_.end() || b->first != at) return "segment of " + std::to_string(bytes) + " bytes has a gap at offset " + std::to_string(at - start);
      const Block& k = b->second;
      if (k.segment != start) return where + " names another segment";
      if (k.size == 0 || at + k.size > start + bytes) return where + " runs past its segment";
      if (opt_.split && k.size % kAlign) return where + " has a size that is not a multiple of " + std::to_string(kAlign);
      if (k.free && prev_free) return where + " is free next to a free block (not coalesced)";
      if (k.free && !(k.small ? small_free_ : large_free_).count({k.size, b->first})) return where + " is free but not in its pool";
      (k.free ? (k.small ? small_free : large_free) : live) += k.free ? 1 : k.size;
      prev_free = k.free;
      at += k.size;
      seen++;
    }
  }
  if (seen != blocks_.size()) return std::to_string(blocks_.size() - seen) + " blocks lie outside every segment";
  if (small_free != small_free_.size() || large_free != large_free_.size()) return "a pool lists a block that is not free";
  if (reserved != stats_.reserved) return "reserved bytes " + std::to_string(stats_.reserved) + " but segments hold " + std::to_string(reserved);
  if (live != stats_.live) return "live bytes " + std::to_string(stats_.live) + " but live blocks hold " + std::to_string(live);
  if (stats_.reserved_peak < reserved || stats_.live_peak < live) return "a peak is below its current value";
  return "";
}

}  // namespace l2e
