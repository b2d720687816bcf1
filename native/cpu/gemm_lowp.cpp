// Driver of the reduced-precision GEMM (gemm_lowp.h). W is packed once at load (core/lowp.h), so
// only x is packed per call. C is cut into row bands (a band's tiles of one k block stay in L2)
// times column chunks of slivers, a few tasks per thread taken from a shared counter; each task
// packs its band of x (tiles of MR rows, [tile][kg][MR] uint32 of bf16 pairs or u8 quads, or
// [tile][kg][2][MR] float, or for AMX kernels [tile][kg/16][MR][16] uint32; rows past T and k past
// K zero), then sweeps k blocks (a W sliver's k block, 32 KB, stays in L1/L2; a multiple of the
// 16 k-groups of an AMX tile) -> slivers -> tiles; with a short x (packed, at most kWholeBytes),
// slivers whole (streaming).
// Between k blocks the int8 kernels keep their int32 sums in C itself.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "core/host_memory.h"
#include "cpu/gemm_lowp.h"
#include "cpu/parallel.h"

namespace l2e {
namespace lowp {
namespace {

constexpr int64_t kBlockGroups = 256;  // k groups per block: 32 KB of one W sliver
constexpr int64_t kBandRows = 224;     // rows of x per band: 224 x 256 x 4 B = 224 KB per k block
constexpr int64_t kTasksPerThread = 3;
// Packed x up to this size stays in L2 beside a whole W sliver (K = 4096: 4 int8 tiles of 14 rows,
// 57 KB each); the AVX-512 / AVX2 kernels then sweep slivers whole.
constexpr int64_t kWholeBytes = 256 << 10;

// Per thread (the pool's and each caller's), grown on demand to the largest band packed so far.
thread_local HostBuffer t_packed_x, t_token_scale;
thread_local std::vector<uint32_t> t_row;

enum class XForm { Bf16Pairs, F32Pairs, U8Quads };

// Packs tiles [t0, t1) of x[T,K] (mr rows of k-groups each, gemm_lowp.h: broadcast order, or tile
// rows for AMX kernels) to dst; int8 also writes the tokens' scales to scales[0 .. (t1 - t0) mr).
// A row of bf16 pairs / u8 quads is made whole in `words` first (kg uint32, zero past K), then
// scattered (broadcast order) or copied 16 groups at a time (tile rows).
void pack_tiles(const float* x, int64_t T, int64_t K, int64_t kg, int mr, XForm form, bool amx, int64_t t0,
                int64_t t1, uint32_t* dst, float* scales, std::vector<uint32_t>& words) {
  const bool f32 = form == XForm::F32Pairs;
  const int64_t per_group = f32 ? 2 : 1;  // uint32 words per (row, k-group)
  words.resize(size_t(kg));
  uint8_t* quads = reinterpret_cast<uint8_t*>(words.data());
  uint16_t* halves = reinterpret_cast<uint16_t*>(words.data());
  for (int64_t t = t0; t < t1; t++) {
    uint32_t* tile = dst + (t - t0) * kg * mr * per_group;
    for (int i = 0; i < mr; i++) {
      const int64_t r = t * mr + i;
      if (f32) {
        float* f = reinterpret_cast<float*>(tile);
        for (int64_t k = 0; k < 2 * kg; k++) f[k * mr + i] = r < T && k < K ? x[r * K + k] : 0.0f;
        continue;
      }
      if (r >= T) {
        std::fill(words.begin(), words.end(), 0u);
      } else if (form == XForm::U8Quads) {
        scales[r - t0 * mr] = quantize_token(x + r * K, K, quads);
        std::fill(quads + K, quads + 4 * kg, uint8_t(0));  // k >= K meets zero weights
      } else {
        for (int64_t k = 0; k < K; k++) halves[k] = f32_to_bf16(x[r * K + k]);
        std::fill(halves + K, halves + 2 * kg, uint16_t(0));
      }
      if (amx) {
        for (int64_t g = 0; g < kg; g += kTileGroups)
          std::memcpy(tile + (g * mr + i * kTileGroups), words.data() + g, kTileGroups * 4);
      } else {
        for (int64_t g = 0; g < kg; g++) tile[g * mr + i] = words[size_t(g)];
      }
    }
  }
}

}  // namespace

void linear_lowp(const float* x, int64_t T, const LowpMatrix& W, float* y, const char* kernel_name) {
  if (W.layout != LowpMatrix::Layout::Gemm) throw Error("linear: weight matrix is not in the GEMM layout");
  if (T <= 0 || W.N <= 0) return;
  const bool int8 = W.precision == Precision::Int8;
  const Bf16Kernel* kb = nullptr;
  const Int8Kernel* ki = nullptr;
  if (int8) ki = kernel_name ? int8_kernel(kernel_name) : &pick_int8_kernel();
  else kb = kernel_name ? bf16_kernel(kernel_name) : &pick_bf16_kernel();
  if (!kb && !ki)
    throw Error(std::string("linear: no ") + precision_name(W.precision) + " kernel '" + kernel_name +
                "' on this CPU");
  // the narrowest tiles that cut x into no more of them (gemm_lowp.h narrower)
  const auto narrowest = [T](auto* k) {
    while (k && k->narrower && (T + k->narrower->mr - 1) / k->narrower->mr == (T + k->mr - 1) / k->mr) k = k->narrower;
    return k;
  };
  ki = narrowest(ki);
  kb = narrowest(kb);
  const int mr = int8 ? ki->mr : kb->mr;
  const bool amx = int8 ? ki->amx : kb->amx;
  const XForm form = int8 ? XForm::U8Quads : kb->x_bf16 ? XForm::Bf16Pairs : XForm::F32Pairs;
  const int64_t words = form == XForm::F32Pairs ? 2 : 1;
  const int64_t N = W.N, K = W.K, kg = W.Kg;
  const int64_t tiles = (T + mr - 1) / mr, slivers = W.slivers();

  const double flops = 2.0 * double(T) * double(N) * double(K);
  const int threads = flops < 2e6 ? 1 : num_threads();
  const int64_t band_tiles = std::max<int64_t>(1, kBandRows / mr);
  const int64_t bands = (tiles + band_tiles - 1) / band_tiles;
  const int64_t want = kTasksPerThread * threads;
  const int64_t chunks = std::min(slivers, std::max<int64_t>(1, (want + bands - 1) / bands));
  const int64_t tasks = bands * chunks;
  // A short x (a query, a short text: packed, at most kWholeBytes): no W block is used more than a
  // few times, from L2, so k is not blocked; each sliver is swept whole and a task's slivers are one
  // contiguous run of W, read once from memory in order. With one tile of x, the kernels' stream
  // variants prefetch it (at T = 20 on the 600M shapes, 1.4-1.5x the blocked order's speed with AMX).
  // Blocked, a 32 KB block of each sliver in turn, the int8 kernel ran T = 20 (two tiles) at half
  // its T = 14 (one tile, whole) speed on the 2-core EPYC: W's stream restarted every 32 KB.
  const bool streaming = tiles == 1;
  const bool whole = streaming || (!amx && tiles * mr * kg * words * 4 <= kWholeBytes);  // AMX: not measured
  const int64_t block_groups = whole ? kg : kBlockGroups;
  const int64_t kblocks = (kg + block_groups - 1) / block_groups;
  const Bf16Micro bf16_micro = kb ? (streaming && kb->stream ? kb->stream : kb->micro) : nullptr;
  const Int8Micro int8_micro = ki ? (streaming && ki->stream ? ki->stream : ki->micro) : nullptr;
  const uint32_t* wd = static_cast<const uint32_t*>(W.data);
  std::atomic<int64_t> next{0};
  std::vector<std::exception_ptr> errors(size_t(std::max(threads, 1)));

  // A task packs its band of x into its thread's buffers (again when a band is split in column
  // chunks: only when x is short), so no more than a band per thread is ever packed.
  auto task = [&](int64_t id) {
    const int64_t band = id / chunks, chunk = id % chunks;
    const int64_t t0 = band * band_tiles, t1 = std::min(tiles, t0 + band_tiles);
    const int64_t s0 = slivers * chunk / chunks, s1 = slivers * (chunk + 1) / chunks;
    // sized for this call's bands: a group of 90 tokens packs 96 rows, not kBandRows
    const int64_t band_rows = std::min(band_tiles, tiles) * mr;
    uint32_t* px = static_cast<uint32_t*>(t_packed_x.reserve(size_t(band_rows * kg * words) * 4, "packed activations"));
    float* scales = int8 ? static_cast<float*>(t_token_scale.reserve(size_t(band_rows) * 4, "token scales")) : nullptr;
    pack_tiles(x, T, K, kg, mr, form, amx, t0, t1, px, scales, t_row);
    if (amx) amx_begin();
    for (int64_t p = 0; p < kblocks; p++) {
      const int64_t g0 = p * block_groups, gn = std::min(block_groups, kg - g0);
      const bool first = p == 0, last_block = p + 1 == kblocks;
      for (int64_t s = s0; s < s1; s++) {
        const uint32_t* b = wd + (s * kg + g0) * kSliver;
        const int64_t col = s * kSliver;
        const int nr = int(std::min<int64_t>(kSliver, N - col));
        for (int64_t t = t0; t < t1; t++) {
          const int64_t row = t * mr;
          const int rows = int(std::min<int64_t>(mr, T - row));
          const uint32_t* a = px + ((t - t0) * kg + g0) * mr * words;
          float* c = y + row * N + col;
          if (int8) {
            const Int8Epilogue ep{scales + (row - t0 * mr), W.scale + col, W.colsum + col};
            int8_micro(gn, a, b, c, N, rows, nr, first, last_block ? &ep : nullptr);
          } else {
            bf16_micro(gn, a, b, c, N, rows, nr, first);
          }
        }
      }
    }
    if (amx) amx_end();
  };
  if (threads <= 1) {
    for (int64_t id = 0; id < tasks; id++) task(id);
    return;
  }
  parallel_for(threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t t = begin; t < end; t++) {
      try {
        for (int64_t id; (id = next.fetch_add(1)) < tasks;) task(id);
      } catch (...) {
        errors[size_t(t)] = std::current_exception();
      }
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace lowp
}  // namespace l2e
