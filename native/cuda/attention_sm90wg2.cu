// Flash-attention forward for Hopper (sm_90a), two consumer warpgroups per block (FlashAttention-3's
// block shape): the same math, inputs and outputs (out, lse) as the one-warpgroup kernel
// (attention_sm90.cu, whose header gives the data layout and the masking) and the sm_80 forward
// (attention_fwd.cu: the online-softmax recurrence). Building blocks: sm90.cuh.
//
// Why: with one 64-row warpgroup per block every K/V byte brought into shared memory feeds 64 query
// rows. Here a block holds 128 query rows, so each K/V stage (TMA load, mbarrier round trip) feeds two
// warpgroups, and the two warpgroups' softmax and products interleave on the SM. Key tiles (kKeys) of
// 128 at hd 64 (S by wgmma m64n128k16) halve the barrier waits and softmax rounds per key; at hd 128
// they are 64 (the shape measured on an H200). ptxas compiles the consumers' code within the 240
// registers their setmaxnreg.inc asks for, not the 168 a thread of a 384-thread block gets at launch, so
// S (64 registers), P (32) and O (64) of a 128-key tile at hd 128 fit without spills too; it stops doing
// so, silently, when the kernel holds a trap instruction (sm90.cuh's bar_wait keeps its trap in a
// function of its own; test/cuda-compile.test.ts checks that ptxas reports no spills).
// The steady-state loop has no branch between the asynchronous products and their waits (the last
// P V is peeled off), which ptxas needs to keep S_j and P_{j-1} V_{j-1} in flight together (otherwise
// it serialises them, C7514).
//
// Block schedule (var-len): the host's schedule has 64-row tiles (kAttentionTileRows, core/backend.h):
// pairs (sequence, first row q) with q = 64 i. The grid keeps one block per schedule tile and head; the
// block of tile (s, q) works iff q % 128 == 0 and then takes rows q .. q + 127 of sequence s: its own
// tile and tile (s, q + 64) when the sequence has it (q + 64 < len), else only its own (the sequence's
// last tile, when the sequence has an odd number of tiles). The block of (s, q) with q % 128 == 64
// exits at once (its rows are done by the block of (s, q - 64)). So every row is covered exactly once:
// the blocks are the tiles (s, 128 p), p = 0 .. ceil(len / 128) - 1, and warpgroup w of a block owns
// rows q + 64 w .. q + 64 w + 63 (those >= len are computed on masked keys and never written).
//
// Block = 3 warpgroups, 384 threads, __launch_bounds__(384, 1) (at most 168 registers each at launch):
//   warpgroups 0, 1 (the consumers): setmaxnreg.inc to 240 registers; per key tile j (keys kKeys j ..
//     kKeys (j + 1) - 1; the block's keys end at kend = min(len, q + 128), so ntiles = ceil(kend /
//     kKeys)): S = Q_w K_j^T (m64n{kKeys}k16, D/16 k-steps, both from shared memory), the online
//     softmax on the accumulator registers, O_w += P V_j (m64n{D}k16, kKeys/16 k-steps, P from
//     registers), S_{j+1} overlapping P_j V_j as in the one-warpgroup kernel; then the stage is released
//     (mbarrier "empty", 256 arrivals). Both warpgroups run every key tile; warpgroup 0's last 64 keys
//     are masked (its rows end 64 keys before the block's).
//   warpgroup 2 (the producer): setmaxnreg.dec to 24 registers; one elected lane issues the TMA loads
//     of Q (once, 128 rows) and of K_j, V_j into a ring of kStages stages (tile j in stage j % kStages,
//     its n-th use n = j / kStages completing mbarrier phases of parity n & 1), each on its own
//     mbarrier. The default is three: a 64-key tile at hd 128 (or a 128-key tile at hd 64) is about a
//     microsecond of the two warpgroups' products, about one TMA round trip; the load of tile j + 3 is
//     issued when tile j is released, two tiles of products before it is needed.
//   Registers: 2 x 128 x 240 + 128 x 24 = 64512 <= 65536 (the register file of the SM, one block).
// Ping-pong (kPingPong, kernel "sm90pp"; FlashAttention-3's inter-warpgroup schedule): the consumers take
//   turns issuing their products, so that one warpgroup's softmax runs while the other's products keep
//   the tensor cores busy, instead of both computing softmax at once. Turn n of warpgroup w (n = 0 for
//   S_0, j for the loop's tile j, ntiles for the last P V; both warpgroups take ntiles + 1 turns) waits
//   on mbarrier turn[w] (128 arrivals, its phase n: parity n & 1) once its data have landed, issues,
//   commits, and arrives on turn[1 - w]. Warpgroup 1 arrives on turn[0] once first, so warpgroup 0
//   goes first. A phase of turn[w] needs the other warpgroup's previous turn, which needed this one's:
//   the two run at most one turn apart, so no wait can see a phase two ahead (parity aliasing), and a
//   stage of the ring is released by both before either waits on its reload (no cycle with "empty").
//   Not yet run on a GPU: gpu-bench times it by name last (sm90pp rows), next to sm90wg2.
// Shared memory: a tile of R rows x D bf16 (Q: R = 128; K, V: R = kKeys) as D/64 swizzle-atom columns
// of R rows x 128 bytes (kAtomQ = 16 KiB, kAtom = kKeys 128 bytes), each written by one TMA box
// {64 columns, 1 head, R rows} with the 128-byte swizzle. Operand descriptors (sm90.cuh's formats):
//   A = Q_w (K-major): start sQ + (kk / 4) kAtomQ + w 8 KiB + (kk % 4) 32, SBO 1024 (k-step kk, 16 dims)
//   B = K_j (K-major, n = kKeys): start sK + (kk / 4) kAtom + (kk % 4) 32, SBO 1024
//   B = V_j (N-major, k = keys): start sV + kk 16 rows x 128 bytes (k-step kk, 16 keys), LBO = kAtom
//     (the next 64 head-dim columns), SBO 1024 (the next 8 keys)
// In all: Q + kStages (K + V) = 128 D 2 + 2 kStages kKeys D 2 bytes + 3 kStages + 3 mbarriers: for the
// default 112 KiB at hd 64, 128 KiB at hd 128; 160 / 224 KiB for 128-key tiles at hd 128 in 2 / 3 stages.
// Tile variants (kWg2Variants at the end, chosen by name for measurement): key tile and stages.
#include "core/backend.h"
#include "cuda/attention_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/mma.cuh"
#include "cuda/sm90.cuh"

namespace l2e {
namespace cuda {

namespace {

constexpr int kRows = 2 * kAttentionTileRows;  // two schedule tiles: one per consumer warpgroup
constexpr int kConsumers = 256;                // two warpgroups
constexpr int kThreads = kConsumers + 128;     // + the producer warpgroup
constexpr int kConsumerRegs = 240, kProducerRegs = 24;
static_assert(2 * 128 * kConsumerRegs + 128 * kProducerRegs <= 65536, "the register file of one SM");
constexpr float kLog2e = 1.4426950408889634f;
// maybe_unused: the sm_80-sm_90 images of this file compile its kernel to nothing (sm_90a only)
[[maybe_unused]] constexpr uint32_t kAtomQ = kRows * 128;  // one swizzle-atom column of the Q tile: 16 KiB

// Q, kStages x (K, V), 1 + 3 kStages + 2 mbarriers (the last two: ping-pong turns), and slack to align
// the tiles to 1024 bytes
template <int D, int kKeys, int kStages>
constexpr size_t smem_bytes() {
  return size_t(kRows) * D * 2 + 2 * kStages * size_t(kKeys) * D * 2 + 8 * (1 + 3 * kStages + 2) + 1024;
}

template <int D, int kKeys, int kStages, bool kPingPong>
__global__ void __launch_bounds__(kThreads, 1)
    flash_fwd_sm90wg2_kernel(const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
                             const __grid_constant__ CUtensorMap tv, const int32_t* cu, const int32_t* tiles, int T,
                             int nh, int nkv, float scale_log2, bf16* __restrict__ out, float* __restrict__ lse) {
#ifdef L2E_SM90A_DEVICE
  using namespace sm90;
  const int seq = tiles[2 * blockIdx.x], q0 = tiles[2 * blockIdx.x + 1];
  if (q0 % kRows != 0) return;  // the second tile of a pair: done by the block of q0 - 64
  constexpr uint32_t kTileQ = uint32_t(kRows) * D * 2, kTile = uint32_t(kKeys) * D * 2;
  constexpr uint32_t kAtom = uint32_t(kKeys) * 128;  // one swizzle-atom column of a K or V tile
  L2E_DYNAMIC_SHARED(uint4, smem_raw);
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t sQ = (raw + 1023u) & ~1023u;
  auto sK = [&](int s) { return sQ + kTileQ + kTile * uint32_t(s); };
  auto sV = [&](int s) { return sQ + kTileQ + kTile * uint32_t(kStages + s); };
  const uint32_t bars = sQ + kTileQ + 2 * kStages * kTile;
  const uint32_t bar_q = bars;
  auto full_k = [&](int s) { return bars + 8 + 8 * uint32_t(s); };
  auto full_v = [&](int s) { return bars + 8 + 8 * uint32_t(kStages + s); };
  auto empty = [&](int s) { return bars + 8 + 8 * uint32_t(2 * kStages + s); };
  auto turn = [&](int w) { return bars + 8 + 8 * uint32_t(3 * kStages + w); };
  // the ring position of key tile j: its stage, and the parity of the mbarrier phases of its use
  auto stage_of = [](int j) { return j % kStages; };
  auto parity_of = [](int j) { return uint32_t(j / kStages) & 1u; };

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;
  const int h = blockIdx.y, kvh = h / (nh / nkv);
  const int base = cu[seq], len = cu[seq + 1] - base;
  const int kend = min(len, q0 + kRows);  // causal: keys up to the block's last query
  const int ntiles = (kend + kKeys - 1) / kKeys;

  if (tid == 0) {
    bar_init(bar_q, 1);
    for (int s = 0; s < kStages; s++) {
      bar_init(full_k(s), 1);
      bar_init(full_v(s), 1);
      bar_init(empty(s), kConsumers);
    }
    if (kPingPong) {
      bar_init(turn(0), 128);
      bar_init(turn(1), 128);
    }
    bar_init_fence();
  }
  __syncthreads();

  if (wg == kConsumers / 128) {  // ---- producer warpgroup ----
    setmaxnreg_dec<kProducerRegs>();
    if (tid == kConsumers) {
      bar_arrive_expect_tx(bar_q, kTileQ);
      for (int c = 0; c < D / 64; c++) tma_load_3d(sQ + c * kAtomQ, &tq, bar_q, c * 64, h, base + q0);
      for (int j = 0; j < ntiles; j++) {
        const int s = stage_of(j);
        if (j >= kStages) bar_wait(empty(s), parity_of(j - kStages));  // tile j - kStages released the stage
        bar_arrive_expect_tx(full_k(s), kTile);
        for (int c = 0; c < D / 64; c++) tma_load_3d(sK(s) + c * kAtom, &tk, full_k(s), c * 64, kvh, base + j * kKeys);
        bar_arrive_expect_tx(full_v(s), kTile);
        for (int c = 0; c < D / 64; c++) tma_load_3d(sV(s) + c * kAtom, &tv, full_v(s), c * 64, kvh, base + j * kKeys);
      }
    }
    return;
  }

  // ---- consumer warpgroup wg: rows qw .. qw + 63 ----
  setmaxnreg_inc<kConsumerRegs>();
  const int qw = q0 + 64 * wg;
  const uint32_t sQw = sQ + uint32_t(wg) * 64 * 128;  // its 64 rows within each atom column
  const int g = lane >> 2, t4 = lane & 3;
  const int row[2] = {qw + (warp & 3) * 16 + g, qw + (warp & 3) * 16 + g + 8};  // sequence-relative
  float o[D / 2];  // O accumulator: register 4n + i = row g + 8 [i >= 2], column 8n + 2 t4 + (i & 1)
#pragma unroll
  for (int i = 0; i < D / 2; i++) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, corr[2];
  float sc[kKeys / 2];           // S = Q K^T, 64 x kKeys: register 4c + i = key 8c + 2 t4 + (i & 1)
  uint32_t pa[kKeys / 16][4];    // P as wgmma A fragments: keys 16kk..16kk+15 are S's column groups 2kk, 2kk+1
  auto issue_qk = [&](int s) {
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      const uint32_t kin = uint32_t(kk % 4) * 32;
      wgmma_ss(sc, desc_sw128(sQw + uint32_t(kk / 4) * kAtomQ + kin, 16, 1024),
               desc_sw128(sK(s) + uint32_t(kk / 4) * kAtom + kin, 16, 1024), kk > 0);
    }
  };
  auto pack_p = [&] {
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; kk++)
#pragma unroll
      for (int r = 0; r < 4; r++) pa[kk][r] = pack_bf16(sc[8 * kk + 2 * r], sc[8 * kk + 2 * r + 1]);
  };

  // ping-pong turns (header): no-ops without kPingPong
  auto my_turn = [&](int n) {
    if constexpr (kPingPong) bar_wait(turn(wg), uint32_t(n) & 1u);
  };
  auto pass_turn = [&] {
    if constexpr (kPingPong) bar_arrive(turn(1 - wg));
  };
  if (kPingPong && wg == 1) bar_arrive(turn(0));  // warpgroup 0 goes first

  bar_wait(bar_q, 0);
  bar_wait(full_k(0), 0);
  my_turn(0);
  fence_operands(sc);
  wgmma_fence();
  issue_qk(0);
  wgmma_commit();
  pass_turn();
  wgmma_wait<0>();
  fence_operands(sc);
  softmax_tile<kKeys>(sc, 0, len, qw, row, t4, scale_log2, m, l, corr);  // O is still 0: nothing to rescale
  pack_p();

  auto issue_pv = [&](int sp) {
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; kk++)
      wgmma_rs_nt(o, pa[kk], desc_sw128(sV(sp) + uint32_t(kk) * 16 * 128, kAtom, 1024), 1);
  };
  // Steady state (no branches between the asynchronous products and their waits, which ptxas needs to
  // keep S_j and P_{j-1} V_{j-1} in flight together).
  for (int j = 1; j < ntiles; j++) {
    const int sp = stage_of(j - 1);  // the stage of tile j-1, whose P V is due now
    bar_wait(full_k(stage_of(j)), parity_of(j));
    bar_wait(full_v(sp), parity_of(j - 1));
    my_turn(j);
    fence_operands(sc);
    fence_operands(o);
    wgmma_fence();
    issue_qk(stage_of(j));
    wgmma_commit();
    issue_pv(sp);
    wgmma_commit();
    pass_turn();
    wgmma_wait<1>();  // S_j has landed; P_{j-1} V_{j-1} may still run
    fence_operands(sc);
    softmax_tile<kKeys>(sc, j * kKeys, len, qw, row, t4, scale_log2, m, l, corr);
    wgmma_wait<0>();
    fence_operands(o);
    bar_arrive(empty(sp));  // this thread no longer reads stage sp
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      o[4 * n] *= corr[0];
      o[4 * n + 1] *= corr[0];
      o[4 * n + 2] *= corr[1];
      o[4 * n + 3] *= corr[1];
    }
    pack_p();
  }
  {  // the last tile's P V
    const int sp = stage_of(ntiles - 1);
    bar_wait(full_v(sp), parity_of(ntiles - 1));
    my_turn(ntiles);
    fence_operands(o);
    wgmma_fence();
    issue_pv(sp);
    wgmma_commit();
    pass_turn();
    wgmma_wait<0>();
    fence_operands(o);
    bar_arrive(empty(sp));
  }

  store_rows<D>(o, m, l, row, t4, len, base, h, nh, T, out, lse);
#else
  // not the sm_90a image, where alone the body exists: trap (a launch error) rather than leave the
  // outputs unwritten; sm90_fwd_available() keeps this from happening on any device we launch on
  __trap();
#endif
}

template <int D, int kKeys, int kStages, bool kPingPong>
void launch(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles,
            int num_tiles, void* out, float* lse, cudaStream_t s) {
  if (num_tiles == 0) return;
  constexpr size_t smem = smem_bytes<D, kKeys, kStages>();
  static_assert(smem <= 227 * 1024, "more shared memory than an sm_90 block may have");
  static bool attr_set = false;
  // the instance, named without the commas that would split L2E_LAUNCH's arguments
  constexpr auto sm90wg2_kernel = &flash_fwd_sm90wg2_kernel<D, kKeys, kStages, kPingPong>;
  if (!attr_set) {
    L2E_CUDA_CHECK(cudaFuncSetAttribute(sm90wg2_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    attr_set = true;
  }
  const CUtensorMap tq = sm90::tensor_map(q, T, nh, D, kRows), tk = sm90::tensor_map(k, T, nkv, D, kKeys),
                    tv = sm90::tensor_map(v, T, nkv, D, kKeys);
  const float scale_log2 = kLog2e / sqrtf(float(D));
  const dim3 grid(static_cast<unsigned>(num_tiles), static_cast<unsigned>(nh));
  L2E_LAUNCH(sm90wg2_kernel, grid, kThreads, smem, s)(tq, tk, tv, cu, tiles, T, nh, nkv, scale_log2,
                                                                   static_cast<bf16*>(out), lse);
  check_launch(kPingPong ? "flash_attention_forward_sm90pp" : "flash_attention_forward_sm90wg2");
}

using Wg2Launch = void (*)(const void*, const void*, const void*, const int32_t*, int, int, int, const int32_t*, int,
                           void*, float*, cudaStream_t);
struct Wg2Variant {
  const char* name;     // wg2k<kKeys>s<kStages>
  Wg2Launch hd64[2];    // [pingpong]; nullptr: not instantiated at this head dim
  Wg2Launch hd128[2];
};
// [0] is the default (the shapes used unless a variant is named): 128-key tiles at hd 64, 64-key tiles at
// hd 128 (the shape of the H200 run, 290 / 351 TFLOP/s at S = 2048 / 8192), 3 stages; the rest hd 128
// only: 128-key tiles (FlashAttention-3's 128 x 128 block at hd 128) with 2 stages (160 KiB of shared
// memory) or 3 (224 KiB), not yet run on a GPU.
constexpr Wg2Variant kWg2Variants[] = {
    {"default", {launch<64, 128, 3, false>, launch<64, 128, 3, true>}, {launch<128, 64, 3, false>, launch<128, 64, 3, true>}},
    {"wg2k128s2", {nullptr, nullptr}, {launch<128, 128, 2, false>, launch<128, 128, 2, true>}},
    {"wg2k128s3", {nullptr, nullptr}, {launch<128, 128, 3, false>, launch<128, 128, 3, true>}},
};

}  // namespace

std::vector<std::string> flash_fwd_sm90wg2_variants() {
  std::vector<std::string> names;
  for (const Wg2Variant& v : kWg2Variants) names.push_back(v.name);
  return names;
}

void flash_fwd_sm90wg2(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv, int hd,
                       const int32_t* tiles, int num_tiles, void* out, float* lse, bool pingpong, int variant,
                       cudaStream_t s) {
  if (hd != 64 && hd != 128)
    throw Error(std::string("flash attention (") + (pingpong ? "sm90pp" : "sm90wg2") + "): head_dim " +
                std::to_string(hd) + " has no wgmma kernel");
  const Wg2Variant& wv = kWg2Variants[variant];
  const Wg2Launch run = (hd == 64 ? wv.hd64 : wv.hd128)[pingpong ? 1 : 0];
  if (!run)
    throw Error(std::string("attention variant '") + wv.name + "' has no head_dim " + std::to_string(hd) +
                " instantiation (the default has)");
  run(q, k, v, cu, T, nh, nkv, tiles, num_tiles, out, lse, s);
}

}  // namespace cuda
}  // namespace l2e
