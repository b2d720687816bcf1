// arenaReplay(trace, options) -> {results, failures, stats, violation}: replays allocation ops on a
// BlockArena (core/block_arena.h) over a fake segment source, for test/block-arena.test.ts.
//   trace: an array of ops, each [0, bytes] (alloc), [1, i] (free the block of the alloc at trace
//   index i; a failed or already freed one is skipped) or [2] (release_cached).
//   options: {capacity: bytes the source may hold at once, split?: true, exactSizes?: false,
//   releaseBeforeGrowing?: false, checkEvery?: true}.
// The fake source hands out segments back to back from 2^40 (adjacent, so a block merged across two
// segments would be seen), 512-aligned, and fails when `capacity` would be exceeded.
// results[k]: for an alloc, the address (-1 when it failed); for a free, the bytes freed; else 0.
// failures: trace indices of failed allocs; error: the first one's message as a DevicePool words it
// (device_oom_message, the source's free bytes and capacity standing for the device's), else "". stats: the arena's, plus segmentsLive.
// heldAfterDestruction: bytes the source still held once the arena was destroyed (0 expected).
// violation: "" or "op k: <what>", the first broken invariant: a returned range not 256-aligned, not
// inside one live segment or overlapping a live one, or one of the arena's own (BlockArena::check);
// checked after every op (checkEvery) or at the end.
#include <napi.h>

#include <map>
#include <string>
#include <vector>

#include "addon/registry.h"
#include "core/block_arena.h"

namespace l2e {
namespace {

struct FakeSource {
  size_t capacity = 0, held = 0;
  uintptr_t next = uintptr_t(1) << 40;
  std::map<uintptr_t, size_t> live;  // segment start -> bytes
};

// "" when [a, a + n) is 256-aligned, inside one live segment and overlaps no live range
std::string check_range(const FakeSource& src, const std::map<uintptr_t, size_t>& ranges, uintptr_t a, size_t n) {
  if (a % 256) return "address " + std::to_string(a) + " is not 256-aligned";
  auto s = src.live.upper_bound(a);
  if (s == src.live.begin() || a + n > std::prev(s)->first + std::prev(s)->second)
    return "range of " + std::to_string(n) + " bytes is not inside a live segment";
  auto r = ranges.upper_bound(a);
  if (r != ranges.end() && r->first < a + n) return "range overlaps a live one after it";
  if (r != ranges.begin() && std::prev(r)->first + std::prev(r)->second > a) return "range overlaps a live one before it";
  return "";
}

Napi::Value ArenaReplay(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 2 || !info[0].IsArray() || !info[1].IsObject())
    throw Napi::TypeError::New(env, "arenaReplay(trace: ops[], options: {capacity, split?, exactSizes?, releaseBeforeGrowing?, checkEvery?})");
  Napi::Array trace = info[0].As<Napi::Array>();
  Napi::Object o = info[1].As<Napi::Object>();
  FakeSource src;
  src.capacity = size_t(o.Get("capacity").As<Napi::Number>().DoubleValue());
  ArenaOptions opt;
  if (o.Has("split")) opt.split = o.Get("split").ToBoolean().Value();
  if (o.Has("releaseBeforeGrowing")) opt.release_before_growing = o.Get("releaseBeforeGrowing").ToBoolean().Value();
  if (o.Has("exactSizes")) opt.exact_sizes = o.Get("exactSizes").ToBoolean().Value();
  const bool every = !o.Has("checkEvery") || o.Get("checkEvery").ToBoolean().Value();

  const uint32_t n = trace.Length();
  std::vector<double> results(n, 0);
  std::vector<uint32_t> failures;
  std::vector<size_t> requested(n, 0);
  std::map<uintptr_t, size_t> ranges;  // live ranges handed out: address -> requested bytes
  std::string violation, error;
  Napi::Object out = Napi::Object::New(env);
  {
    BlockArena arena(ArenaSource{[&src](size_t bytes) -> uintptr_t {
                                   if (src.held + bytes > src.capacity) return 0;
                                   const uintptr_t a = src.next;
                                   src.next += (bytes + 511) / 512 * 512;
                                   src.held += bytes;
                                   src.live.emplace(a, bytes);
                                   return a;
                                 },
                                 [&src](uintptr_t a, size_t bytes) {
                                   src.held -= bytes;
                                   src.live.erase(a);
                                 }},
                     opt);
    for (uint32_t k = 0; k < n && violation.empty(); k++) {
      Napi::Array op = trace.Get(k).As<Napi::Array>();
      const int kind = op.Get(uint32_t(0)).As<Napi::Number>().Int32Value();
      std::string bad;
      if (kind == 0) {
        const size_t bytes = size_t(op.Get(uint32_t(1)).As<Napi::Number>().DoubleValue());
        const uintptr_t a = arena.alloc(bytes);
        if (!a) {
          results[k] = -1;
          failures.push_back(k);
          if (error.empty())
            error = device_oom_message(arena.last_segment_request(), src.capacity - src.held, src.capacity,
                                       arena.stats().live, "the fake source is full");
        } else {
          bad = check_range(src, ranges, a, bytes);
          ranges.emplace(a, bytes);
          requested[k] = bytes;
          results[k] = double(a);
        }
      } else if (kind == 1) {
        const uint32_t i = op.Get(uint32_t(1)).As<Napi::Number>().Uint32Value();
        if (i < k && results[i] > 0 && ranges.count(uintptr_t(results[i]))) {
          ranges.erase(uintptr_t(results[i]));
          results[k] = double(arena.free(uintptr_t(results[i])));
          if (results[k] < double(requested[i])) bad = "free of op " + std::to_string(i) + " returned fewer bytes than asked";
        }
      } else if (kind == 2) {
        arena.release_cached();
      } else {
        throw Napi::TypeError::New(env, "arenaReplay: op " + std::to_string(k) + " has kind " + std::to_string(kind) + " (expected 0, 1 or 2)");
      }
      if (bad.empty() && (every || k + 1 == n)) bad = arena.check();
      if (!bad.empty()) violation = "op " + std::to_string(k) + ": " + bad;
    }
    const ArenaStats& st = arena.stats();
    Napi::Object stats = Napi::Object::New(env);
    stats.Set("segmentAllocs", double(st.segment_allocs));
    stats.Set("segmentReleases", double(st.segment_releases));
    stats.Set("segmentsLive", double(src.live.size()));
    stats.Set("reserved", double(st.reserved));
    stats.Set("reservedPeak", double(st.reserved_peak));
    stats.Set("live", double(st.live));
    stats.Set("livePeak", double(st.live_peak));
    out.Set("stats", stats);
    Napi::Array res = Napi::Array::New(env, n), fails = Napi::Array::New(env, failures.size());
    for (uint32_t k = 0; k < n; k++) res.Set(k, results[k]);
    for (size_t i = 0; i < failures.size(); i++) fails.Set(uint32_t(i), double(failures[i]));
    out.Set("results", res);
    out.Set("failures", fails);
    out.Set("violation", violation);
    out.Set("error", error);
  }
  out.Set("heldAfterDestruction", double(src.held));  // the arena's destructor releases every segment
  return out;
}

void register_arena(Napi::Env env, Napi::Object exports) {
  exports.Set("arenaReplay", Napi::Function::New(env, ArenaReplay, "arenaReplay"));
}

}  // namespace

L2E_REGISTER(arena, register_arena);

}  // namespace l2e
