// Flash-attention backward for Hopper (sm_90a) on wgmma: the same math, inputs and outputs as the
// sm_80 backward (attention_bwd.cu, whose header gives the formulas, GQA and dq_accum), its five
// products per tile as warpgroup matrix products (FlashAttention-3's backward block: 128 keys, 64-query
// tiles, two warpgroups). Variants of flash_bwd ("sm90[ws]k128q64s2" / "s3": 2 or 3 stages;
// "sm90wsk128q64s2r": dQ by TMA reduce-add), run only where the sm_90a forwards run (sm90_fwd_available).
// Building blocks: sm90.cuh.
//
// Block: 256 threads (two warpgroups); the block owns keys k0 .. k0 + 127 of one (sequence, kv head)
// (the 128-key schedule of attention_bwd.cu: the block of tile (s, r) works iff r % 128 == 0), warpgroup
// w keys k0 + 64 w .. + 63 (wgmma's m = 64 rows; rows past the sequence compute zeros, never stored).
// K, V stay in shared memory; the block walks the items (group head, 64-query tile i0 >= k0) of
// attention_bwd_items.cuh through Stages (2 or 3) stages of Q, dO, lse, D loaded by cp.async (the next
// Stages - 1 items land while this one is computed). With kProducer ("sm90ws..." variants,
// FlashAttention-3's warp specialisation) a third warpgroup (384 threads) loads instead: setmaxnreg gives
// it 24 registers and the two consumer warpgroups 240; its first warp's lane 0 issues the TMA tile loads
// of K, V (once) and of each item's Q, dO, the warp's 32 lanes store lse and D; item it completes phase
// it / S of the stage's "full" mbarrier (32 arrivals + the TMA bytes) and, once the consumers' dV and dK
// products are done, of its "empty" one (256 arrivals), which the producer waits on before item it + S.
// Rows past the sequence come from the next sequence (zeros past T) and are masked as the zero-filled
// ones are. Per item, warpgroup w (accumulators: register 4 c + i = row 16 (warp % 4) + g + 8 [i >= 2],
// column 8 c + 2 t4 + (i & 1)):
//   S^T  = K_w Q^T    m64n64k16, D/16 k-steps, A = K_w and B = Q K-major (k = head dim)
//   dP^T = V_w dO^T   the same with V, dO
//   P^T = 2^(S^T c log2 e - lse log2 e) (0 where key > query or the query is past the sequence; tested
//   only on tiles reaching the diagonal or the end), dS^T = P^T (dP^T - D)
//   dV_w += P^T dO    m64n{D}k16, 4 k-steps over the queries, A = P^T from registers (the accumulator's
//                     column pairs are the A fragment's: as the forward's P), B = dO N-major
//   dK_w += dS^T Q    the same with dS^T, Q
//   dS^T to shared memory ([key][query], 128-byte rows, swizzled); after a block barrier (both halves)
//   dQ[:, D/2 w ..] = dS K   m64n{D/2}k16, 8 k-steps over the 128 keys, A = dS MN-major (its [key][query]
//                     rows), B = K N-major; fp32 atomics into dq_accum (dQ / scale; rows past the
//                     sequence skipped).
//   (kProducer: dS^T double-buffered, published by an mbarrier of 256 arrivals instead of the block
//   barrier; a warpgroup writes buffer it & 1 only after both passed item it - 1's, so after both read
//   item it - 2's.)
//   (kTmaDq, FlashAttention-3's dQ: instead of the atomics, the warpgroup stores its dQ tile, fp32 64 x D/2,
//   into a buffer of its own as D/64 boxes of 32 columns in the 128-byte swizzle (row r at r * 128, 16-byte
//   chunk c at c ^ (r % 8): a warp's float2 stores meet no bank twice), fences it and arrives on its dq
//   mbarrier (128 arrivals); its first thread waits for the phase and adds the boxes into dq_accum with
//   cp.reduce.async.bulk.tensor, one group (rows past the sequence add zeros: their dS is 0; rows past T
//   are skipped). Before arriving on the next
//   item's dS^T mbarrier that thread waits until the reduction has read the buffer (wait_group.read), so
//   every thread writes the buffer again only after that.)
// dK, dV (D/2 + D/2 registers a thread) live across the items; S^T, dP^T 32 + 32.
// Shared memory (tiles 1024-byte aligned, in wgmma's 128-byte-swizzle layout: a tile of R rows x D bf16
// is D/64 atom columns of R rows x 128 bytes, 16-byte chunk c of row r at chunk c ^ (r % 8); sm90.cuh):
//   K, V (2 x 128 D 2 bytes), Stages stages of Q, dO (2 x 64 D 2) and lse, D (512 bytes, padded to
//   1 KiB), dS^T (16 KiB): 146 / 179 KiB at hd 128 in 2 / 3 stages, 82 / 99 KiB at hd 64 (kProducer: a
//   second dS^T and 2 S + 3 mbarriers, 16 KiB more; kTmaDq: two dQ tiles, 2 x 64 x D/2 x 4 bytes, and 2
//   mbarriers: 194 KiB at hd 128 in 2 stages, so 2 stages only).
// Descriptors (k-step kk):
//   A = K_w  (K-major): sK + (kk / 4) 16 KiB + w 8 KiB + (kk % 4) 32, SBO 1024 (also V_w)
//   B = Q    (K-major): sQ + (kk / 4) 8 KiB + (kk % 4) 32, SBO 1024 (also dO)
//   B = dO   (N-major, k = query): sO + kk 16 rows x 128, LBO 8 KiB (the next 64 columns), SBO 1024 (also Q)
//   A = dS   (MN-major, k = key): sdS + kk 16 rows x 128, SBO 1024 (the next 8 keys)
//   B = K    (N-major, k = key): sK + kk 16 rows x 128 + the warpgroup's first column (D/2 w: an atom
//            column at hd 128, 64 bytes into the rows at hd 64), SBO 1024
// The shared-memory writes (cp.async, the dS^T and lse, D stores) are generic-proxy writes read by wgmma
// (the async proxy): each writer fences (fence.proxy.async) before the barrier that publishes them.
#include <string>

#include "core/backend.h"
#include "cuda/attention_bwd_items.cuh"
#include "cuda/attention_launch.h"
#include "cuda/cp_async.cuh"
#include "cuda/cuda_check.h"
#include "cuda/mma.cuh"
#include "cuda/sm90.cuh"

namespace l2e {
namespace cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int kKeys = 2 * kAttentionTileRows;  // two schedule tiles: 64 keys per warpgroup
constexpr int kQ = 64;

template <int D, int Stages, bool kProducer, bool kTmaDq = false>
struct Sm90BwdShape {
  static_assert(!kTmaDq || kProducer, "dQ by TMA reduce-add only in the warp-specialised kernel");
  static constexpr int kThreads = kProducer ? 384 : 256;  // + the producer warpgroup
  static constexpr uint32_t kTileK = kKeys * D * 2, kTileQ = kQ * D * 2;
  static constexpr uint32_t kStage = 2 * kTileQ + 1024;  // Q, dO, lse and D
  static constexpr uint32_t kDS = kKeys * kQ * 2;
  static constexpr int kDSBuffers = kProducer ? 2 : 1;
  static constexpr uint32_t kDQ = kTmaDq ? kQ * (D / 2) * 4 : 0;  // a warpgroup's dQ tile
  // full, empty per stage; K and V; dS per buffer; (kTmaDq) dQ per warpgroup
  static constexpr int kBars = kProducer ? 2 * Stages + 3 + (kTmaDq ? 2 : 0) : 0;
  static constexpr size_t smem = 2 * size_t(kTileK) + Stages * size_t(kStage) + kDSBuffers * size_t(kDS) + 2 * size_t(kDQ) +
                                 8 * kBars + 1024;  // + alignment slack
};
constexpr int kConsumerRegs = 240, kProducerRegs = 24;
static_assert(2 * 128 * kConsumerRegs + 128 * kProducerRegs <= 65536, "the register file of one SM");

// Rows r0 .. r0 + R - 1 of a [rows][stride] bf16 matrix (those >= len zero-filled without a read) into the
// 128-byte-swizzle layout above, by threads tid of nthreads (not committed).
template <int D, int R>
__device__ __forceinline__ void cp_tile_sw128(char* dst, const bf16* src, size_t stride, int r0, int len, int tid,
                                              int nthreads) {
  constexpr int kChunks = D / 8;
  for (int i = tid; i < R * kChunks; i += nthreads) {
    const int r = i / kChunks, c = i % kChunks;
    const bool ok = r0 + r < len;
    cp_async16(dst + (c / 8) * (R * 128) + r * 128 + ((c % 8) ^ (r % 8)) * 16, src + size_t(ok ? r0 + r : 0) * stride + c * 8,
               ok ? 16 : 0);
  }
}

// The producer's tensor maps (unused, zero, in the cp.async variants), and dq_accum's (kTmaDq).
struct Bwd90Maps {
  CUtensorMap q, dout, k, v, dq;
};

template <int D, int Stages, bool kProducer, bool kTmaDq>
__global__ void __launch_bounds__(Sm90BwdShape<D, Stages, kProducer, kTmaDq>::kThreads, 1)
    flash_bwd_sm90_kernel(const __grid_constant__ Bwd90Maps maps, const bf16* __restrict__ q, const bf16* __restrict__ k,
                          const bf16* __restrict__ v, const bf16* __restrict__ dout, const float* __restrict__ lse,
                          const float* __restrict__ Dvec, const int32_t* cu, const int32_t* tiles, int T, int nh, int nkv,
                          float scale_log2, float scale, float* __restrict__ dq_accum, bf16* __restrict__ dk,
                          bf16* __restrict__ dv) {
#ifdef L2E_SM90A_DEVICE
  using namespace sm90;
  using Sh = Sm90BwdShape<D, Stages, kProducer, kTmaDq>;
  constexpr int S = Stages;
  constexpr uint32_t kAtomK = kKeys * 128, kAtomQ = kQ * 128;  // one atom column of a K / Q tile
  const int seq = tiles[2 * blockIdx.x], k0 = tiles[2 * blockIdx.x + 1];
  if (k0 % kKeys != 0) return;  // the second tile of a pair: taken by the block of k0 - 64
  L2E_DYNAMIC_SHARED(uint4, smem_raw);
  char* const raw = reinterpret_cast<char*>(smem_raw);
  char* const sK = raw + (((smem_u32(raw) + 1023u) & ~1023u) - smem_u32(raw));
  char* const sV = sK + Sh::kTileK;
  char* const stages = sV + Sh::kTileK;
  char* const sdS0 = stages + S * Sh::kStage;
  auto st_q = [&](int st) { return stages + st * Sh::kStage; };
  auto st_do = [&](int st) { return st_q(st) + Sh::kTileQ; };
  auto st_lse = [&](int st) { return reinterpret_cast<float*>(st_q(st) + 2 * Sh::kTileQ); };
  auto sdq = [&](int w) { return reinterpret_cast<float*>(sdS0 + Sh::kDSBuffers * Sh::kDS + w * Sh::kDQ); };
  // mbarriers (kProducer): full(st) (the producer warp's 32 lanes, the TMA bytes), empty(st) (the 256
  // consumer threads), K and V (1, their bytes), dS buffer b (256), (kTmaDq) warpgroup w's dQ tile (128)
  const uint32_t bars = smem_u32(sdS0 + Sh::kDSBuffers * Sh::kDS + 2 * Sh::kDQ);
  auto full = [&](int st) { return bars + 8 * uint32_t(st); };
  auto empty = [&](int st) { return bars + 8 * uint32_t(S + st); };
  const uint32_t bar_kv = bars + 16 * S;
  auto ds_bar = [&](int b) { return bar_kv + 8 + 8 * uint32_t(b); };
  auto dq_bar = [&](int w) { return bar_kv + 24 + 8 * uint32_t(w); };

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, wg = warp >> 2;
  const int g = lane >> 2, t4 = lane & 3;
  const int kvh = blockIdx.y, group = nh / nkv;
  const int base = cu[seq], len = cu[seq + 1] - base;
  const size_t qs = size_t(nh) * D, ks = size_t(nkv) * D;
  const int nq = (len - k0 + kQ - 1) / kQ;  // query tiles at or after k0
  const BwdItems items{k0, base, len, group, kvh, nq, group * nq};
  auto issue = [&](int it) {  // cp.async variants: item it into stage it % S, as one group (empty past the last item)
    if (it < items.count) {
      const int st = it % S, h = items.head(it), i0 = items.first_row(it, kQ);
      const size_t at = size_t(base) * qs + size_t(h) * D;
      cp_tile_sw128<D, kQ>(st_q(st), q + at, qs, i0, len, tid, Sh::kThreads);
      cp_tile_sw128<D, kQ>(st_do(st), dout + at, qs, i0, len, tid, Sh::kThreads);
      float* sl = st_lse(st);
      for (int r = tid; r < kQ; r += Sh::kThreads) {
        const bool ok = i0 + r < len;
        const size_t row = size_t(h) * T + base + (ok ? i0 + r : 0);
        cp_async4(sl + r, lse + row, ok ? 4 : 0);
        cp_async4(sl + kQ + r, Dvec + row, ok ? 4 : 0);
      }
    }
    cp_async_commit();
  };
  if constexpr (kProducer) {
    if (tid == 0) {
      for (int st = 0; st < S; st++) {
        bar_init(full(st), 32);
        bar_init(empty(st), 256);
      }
      bar_init(bar_kv, 1);
      bar_init(ds_bar(0), 256);
      bar_init(ds_bar(1), 256);
      if constexpr (kTmaDq) {
        bar_init(dq_bar(0), 128);
        bar_init(dq_bar(1), 128);
      }
      bar_init_fence();
    }
    __syncthreads();
    if (wg == 2) {  // ---- the producer warpgroup: its first warp loads, the rest leave ----
      setmaxnreg_dec<kProducerRegs>();
      if (warp != 8) return;
      if (lane == 0) {
        bar_arrive_expect_tx(bar_kv, 2 * Sh::kTileK);
        for (int c = 0; c < D / 64; c++) {
          tma_load_3d(smem_u32(sK) + c * kAtomK, &maps.k, bar_kv, c * 64, kvh, base + k0);
          tma_load_3d(smem_u32(sV) + c * kAtomK, &maps.v, bar_kv, c * 64, kvh, base + k0);
        }
      }
      for (int it = 0; it < items.count; it++) {
        const int st = it % S, h = items.head(it), i0 = items.first_row(it, kQ);
        if (it >= S) bar_wait(empty(st), uint32_t(it / S - 1) & 1u);  // item it - S has released the stage
        float* sl = st_lse(st);  // lse and D by the warp's plain loads (0 past the sequence)
        for (int r = lane; r < kQ; r += 32) {
          const bool ok = i0 + r < len;
          const size_t row = size_t(h) * T + base + i0 + r;
          sl[r] = ok ? lse[row] : 0.0f;
          sl[kQ + r] = ok ? Dvec[row] : 0.0f;
        }
        if (lane == 0) {  // Q and dO rows past the sequence: the next sequence's, or zeros past T; masked
          bar_arrive_expect_tx(full(st), 2 * Sh::kTileQ);
          for (int c = 0; c < D / 64; c++) {
            tma_load_3d(smem_u32(st_q(st)) + c * kAtomQ, &maps.q, full(st), c * 64, h, base + i0);
            tma_load_3d(smem_u32(st_do(st)) + c * kAtomQ, &maps.dout, full(st), c * 64, h, base + i0);
          }
        } else {
          bar_arrive(full(st));
        }
      }
      return;
    }
    setmaxnreg_inc<kConsumerRegs>();
    bar_wait(bar_kv, 0);
  } else {
    cp_tile_sw128<D, kKeys>(sK, k + size_t(base) * ks + size_t(kvh) * D, ks, k0, len, tid, Sh::kThreads);
    cp_tile_sw128<D, kKeys>(sV, v + size_t(base) * ks + size_t(kvh) * D, ks, k0, len, tid, Sh::kThreads);
#pragma unroll
    for (int it = 0; it < S - 1; it++) issue(it);  // K and V join item 0's group
  }

  const int wrow = 64 * wg + 16 * (warp & 3) + g;  // this thread's first key row within the block
  const int key[2] = {k0 + wrow, k0 + wrow + 8};   // sequence-relative
  const uint32_t uK = smem_u32(sK), uV = smem_u32(sV);
  const uint32_t uKw = uK + uint32_t(wg) * 64 * 128, uVw = uV + uint32_t(wg) * 64 * 128;
  constexpr int kHalf = D / 2;  // dQ columns per warpgroup
  const uint32_t uKcols = uK + uint32_t(wg * kHalf / 64) * kAtomK + uint32_t(wg * kHalf % 64) * 2;
  float dK[D / 2], dV[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; i++) dK[i] = dV[i] = 0.0f;

  for (int it = 0; it < items.count; it++) {
    const int st = it % S;
    if constexpr (kProducer) {
      bar_wait(full(st), uint32_t(it / S) & 1u);
    } else {
      cp_async_wait<S - 2>();
      fence_proxy_async();
      __syncthreads();     // item it has landed for every thread; every thread is done with item it - 1
      issue(it + S - 1);  // into the stage item it - 1 used
    }
    const int h = items.head(it), i0 = items.first_row(it, kQ);
    const uint32_t uQ = smem_u32(st_q(st)), uO = smem_u32(st_do(st));
    const float* sl = st_lse(st);
    char* const sdS = sdS0 + (kProducer ? (it & 1) : 0) * Sh::kDS;
    const uint32_t udS = smem_u32(sdS);

    float s[32], dp[32];  // S^T, dP^T: 64 keys x 64 queries
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      const uint32_t at = uint32_t(kk / 4) * kAtomK + uint32_t(kk % 4) * 32;
      wgmma_ss(s, desc_sw128(uKw + at, 16, 1024), desc_sw128(uQ + uint32_t(kk / 4) * kAtomQ + uint32_t(kk % 4) * 32, 16, 1024), kk > 0);
    }
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      const uint32_t at = uint32_t(kk / 4) * kAtomK + uint32_t(kk % 4) * 32;
      wgmma_ss(dp, desc_sw128(uVw + at, 16, 1024), desc_sw128(uO + uint32_t(kk / 4) * kAtomQ + uint32_t(kk % 4) * 32, 16, 1024), kk > 0);
    }
    wgmma_commit();
    wgmma_wait<1>();  // S^T has landed; dP^T may still run
    fence_operands(s);
    const bool masked = k0 + 64 * wg + 63 > i0 || i0 + kQ > len;
#pragma unroll
    for (int c = 0; c < 8; c++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const int qc = 8 * c + 2 * t4 + e;
        const float l2 = sl[qc] * kLog2e;
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
          float& x = s[4 * c + 2 * rr + e];
          x = exp2_ftz(fmaf(x, scale_log2, -l2));
          if (masked && (key[rr] > i0 + qc || i0 + qc >= len)) x = 0.0f;
        }
      }
    wgmma_wait<0>();
    fence_operands(dp);
#pragma unroll
    for (int c = 0; c < 8; c++)
#pragma unroll
      for (int e = 0; e < 2; e++) {
        const float d = sl[kQ + 8 * c + 2 * t4 + e];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) dp[4 * c + 2 * rr + e] = s[4 * c + 2 * rr + e] * (dp[4 * c + 2 * rr + e] - d);
      }
    // P^T, dS^T as A fragments (k = query): queries 16 kk .. 16 kk + 15 are column groups 2 kk, 2 kk + 1
    uint32_t pa[4][4], da[4][4];
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
      for (int r = 0; r < 4; r++) {
        pa[kk][r] = pack_bf16(s[8 * kk + 2 * r], s[8 * kk + 2 * r + 1]);
        da[kk][r] = pack_bf16(dp[8 * kk + 2 * r], dp[8 * kk + 2 * r + 1]);
      }
    fence_operands(dV);
    fence_operands(dK);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wgmma_rs_nt(dV, pa[kk], desc_sw128(uO + uint32_t(kk) * 16 * 128, kAtomQ, 1024), 1);
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wgmma_rs_nt(dK, da[kk], desc_sw128(uQ + uint32_t(kk) * 16 * 128, kAtomQ, 1024), 1);
    wgmma_commit();
    // dS^T to shared memory while the products run: key row wrow (+ 8), queries 8 c + 2 t4 (+ 1), the
    // value of da[c / 2][2 (c % 2) + rr] packed again from dp: da's registers are an A operand in
    // flight, which the PTX ISA forbids reading before the wgmma.wait_group that covers it
#pragma unroll
    for (int c = 0; c < 8; c++)
#pragma unroll
      for (int rr = 0; rr < 2; rr++) {
        const int r = wrow + 8 * rr, i = 8 * (c / 2) + 2 * (2 * (c % 2) + rr);
        *reinterpret_cast<uint32_t*>(sdS + r * 128 + ((c ^ (r % 8)) * 16) + 4 * t4) = pack_bf16(dp[i], dp[i + 1]);
      }
    fence_proxy_async();
    if constexpr (kProducer) {  // both warpgroups' dS^T (buffer it & 1: the last reads of it were item it - 2's)
      if constexpr (kTmaDq)
        if (tid % 128 == 0) bulk_wait_read<0>();  // item it - 1's dQ reduction has read the warpgroup's buffer
      bar_arrive(ds_bar(it & 1));
      bar_wait(ds_bar(it & 1), uint32_t(it >> 1) & 1u);
    } else {
      __syncthreads();  // both warpgroups' dS^T
    }
    float dq[kHalf / 2];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; kk++)
      wgmma_ss_tt(dq, desc_sw128(udS + uint32_t(kk) * 16 * 128, kAtomQ, 1024),
                  desc_sw128(uKcols + uint32_t(kk) * 16 * 128, kAtomK, 1024), kk > 0);
    wgmma_commit();
    if constexpr (kProducer) {
      wgmma_wait<1>();  // dV and dK: the stage's Q and dO are read (lse and D long since)
      bar_arrive(empty(st));
    }
    wgmma_wait<0>();  // dV, dK and dQ
    fence_operands(dq);
    fence_operands(dV);
    fence_operands(dK);
    if constexpr (kTmaDq) {  // the tile through shared memory, one reduce-add by the warpgroup's first thread
      char* const tile = reinterpret_cast<char*>(sdq(wg));
#pragma unroll
      for (int rr = 0; rr < 2; rr++) {
        const int r = 16 * (warp & 3) + g + 8 * rr;
#pragma unroll
        for (int n = 0; n < kHalf / 8; n++) {  // columns 8 n + 2 t4 (+ 1): box n / 4, chunk 2 (n % 4) + t4 / 2
          char* at = tile + (n / 4) * (kQ * 128) + r * 128 + (((2 * (n % 4) + t4 / 2) ^ (r % 8)) * 16) + (t4 % 2) * 8;
          *reinterpret_cast<float2*>(at) = make_float2(dq[4 * n + 2 * rr], dq[4 * n + 2 * rr + 1]);
        }
      }
      fence_proxy_async();
      bar_arrive(dq_bar(wg));
      if (tid % 128 == 0) {
        bar_wait(dq_bar(wg), uint32_t(it) & 1u);
#pragma unroll
        for (int b = 0; b < kHalf / 32; b++)
          tma_reduce_add_3d(&maps.dq, smem_u32(tile) + uint32_t(b) * kQ * 128, wg * kHalf + 32 * b, h, base + i0);
        bulk_commit();
      }
    } else {
#pragma unroll
      for (int rr = 0; rr < 2; rr++) {
        const int qr = i0 + 16 * (warp & 3) + g + 8 * rr;
        if (qr >= len) continue;
        float* row = dq_accum + size_t(base + qr) * qs + size_t(h) * D + wg * kHalf;
#pragma unroll
        for (int n = 0; n < kHalf / 8; n++) {
          atomicAdd(row + 8 * n + 2 * t4, dq[4 * n + 2 * rr]);
          atomicAdd(row + 8 * n + 2 * t4 + 1, dq[4 * n + 2 * rr + 1]);
        }
      }
    }
  }
  if constexpr (kTmaDq)
    if (tid % 128 == 0) bulk_wait_read<0>();  // the last reduction has read its buffer before the block ends
  if constexpr (!kProducer) cp_async_wait<0>();  // the trailing (empty) groups

#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    if (key[rr] >= len) continue;
    bf16* dkr = dk + size_t(base + key[rr]) * ks + size_t(kvh) * D;
    bf16* dvr = dv + size_t(base + key[rr]) * ks + size_t(kvh) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      *reinterpret_cast<uint32_t*>(dkr + n * 8 + 2 * t4) = pack_bf16(dK[4 * n + 2 * rr] * scale, dK[4 * n + 2 * rr + 1] * scale);
      *reinterpret_cast<uint32_t*>(dvr + n * 8 + 2 * t4) = pack_bf16(dV[4 * n + 2 * rr], dV[4 * n + 2 * rr + 1]);
    }
  }
#else
  // not the sm_90a image, where alone the body exists: trap (a launch error) rather than leave the
  // outputs unwritten; sm90_fwd_available() keeps this from happening on any device we launch on
  __trap();
#endif
}

template <int D, int S, bool kProducer, bool kTmaDq = false>
void launch(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
            const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles, int num_tiles, float* dq_accum, void* dk,
            void* dv, cudaStream_t s) {
  using Sh = Sm90BwdShape<D, S, kProducer, kTmaDq>;
  static_assert(Sh::smem <= 227 * 1024, "more shared memory than an sm_90 block may have");
  if (num_tiles == 0) return;
  static bool attr_set = false;
  // the instance, named without the commas L2E_LAUNCH would split
  constexpr auto flash_bwd_sm90_instance = &flash_bwd_sm90_kernel<D, S, kProducer, kTmaDq>;
  if (!attr_set) {
    L2E_CUDA_CHECK(
        cudaFuncSetAttribute(flash_bwd_sm90_instance, cudaFuncAttributeMaxDynamicSharedMemorySize, int(Sh::smem)));
    attr_set = true;
  }
  Bwd90Maps maps{};
  if constexpr (kProducer) {
    maps.q = sm90::tensor_map(q, T, nh, D, kQ);
    maps.dout = sm90::tensor_map(dout, T, nh, D, kQ);
    maps.k = sm90::tensor_map(k, T, nkv, D, kKeys);
    maps.v = sm90::tensor_map(v, T, nkv, D, kKeys);
  }
  if constexpr (kTmaDq) maps.dq = sm90::tensor_map_f32(dq_accum, T, nh, D, kQ);
  const float scale = 1.0f / sqrtf(float(D)), scale_log2 = scale * kLog2e;
  L2E_LAUNCH(flash_bwd_sm90_instance, dim3(unsigned(num_tiles), unsigned(nkv)), Sh::kThreads, Sh::smem, s)(
      maps, static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
      static_cast<const bf16*>(dout), lse, Dvec, cu, tiles, T, nh, nkv, scale_log2, scale, dq_accum,
      static_cast<bf16*>(dk), static_cast<bf16*>(dv));
  check_launch(kTmaDq      ? "flash_attention_backward_sm90wsr"
               : kProducer ? "flash_attention_backward_sm90ws"
                           : "flash_attention_backward_sm90");
}

}  // namespace

void flash_bwd_sm90(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
                    const int32_t* cu, int T, int nh, int nkv, int hd, const int32_t* tiles, int num_tiles,
                    float* dq_accum, void* dk, void* dv, int stages, bool producer, bool tma_dq, cudaStream_t s) {
  if ((hd != 64 && hd != 128) || (stages != 2 && stages != 3) || (tma_dq && (!producer || stages != 2)))
    throw Error("flash attention backward (sm90): no wgmma kernel for head_dim " + std::to_string(hd) + " in " +
                std::to_string(stages) + " stages" + (tma_dq ? " with dQ by TMA" : ""));
  using Launch = void (*)(const void*, const void*, const void*, const void*, const float*, const float*,
                          const int32_t*, int, int, int, const int32_t*, int, float*, void*, void*, cudaStream_t);
  // [cp.async, TMA producer, TMA producer and dQ by TMA reduce-add][hd 128][3 stages]
  constexpr Launch kLaunch[3][2][2] = {
      {{launch<64, 2, false>, launch<64, 3, false>}, {launch<128, 2, false>, launch<128, 3, false>}},
      {{launch<64, 2, true>, launch<64, 3, true>}, {launch<128, 2, true>, launch<128, 3, true>}},
      {{launch<64, 2, true, true>, nullptr}, {launch<128, 2, true, true>, nullptr}}};
  kLaunch[tma_dq ? 2 : producer ? 1 : 0][hd == 128][stages == 3](q, k, v, dout, lse, Dvec, cu, T, nh, nkv, tiles,
                                                                 num_tiles, dq_accum, dk, dv, s);
}

}  // namespace cuda
}  // namespace l2e
