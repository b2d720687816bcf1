// Flash-attention backward with the warp layouts split by product (FlashAttention-2's hd-128 scheme):
// the same math, inputs and outputs as attention_bwd.cu (whose header gives the formulas, GQA, the
// 128-key block schedule and dq_accum), with P and dS passed through shared memory so that each of
// the five products gets its own warp tiling.
//
// Why: attention_bwd.cu's warp owns 16 keys for every product (its dK, dV rows stay in its registers,
// P^T and dS^T go from the C tiles of S^T, dP^T straight into A fragments), so each warp reads all of a
// query tile's Q and dO for a 16-key strip: 0.65 ldmatrix.x4 an MMA at k128q32w8, where the H200
// profile showed shared memory, not the tensor cores, as the limit. Here a warp computes 32 x 32 or
// 32 x 64 tiles: 0.45 ldmatrix an MMA, plus the stores of P and dS (2 x 16 KiB a tile).
//
// Block: 128 keys k0.. of one (sequence, kv head), 8 warps; its K, V stay in shared memory. It walks the
// (group head, 64-query tile i0 >= k0) items through a 2-stage cp.async pipeline of Q, dO, lse, D
// (attention_bwd_items.cuh, as attention_bwd.cu). Per item, three phases between barriers:
//   1. warp (wm = w % 2, wn = w / 2): S = Q K^T and dP = dO V^T for queries i0 + 32 wm.., keys
//      k0 + 32 wn.. (2 x 4 m16n8 tiles each, D / 16 k-steps); P = 2^(c s - lse log2 e) (0 where masked:
//      key > query or either past the sequence; only tiles reaching the diagonal or an end test it),
//      dS = P (dP - D); both to shared memory as bf16, [query][key].
//   2. warp (kn = w % 4, dn = w / 4): dV += P^T dO and dK += dS^T Q for keys k0 + 32 kn.., head-dim
//      columns 64 dn.. (2 x 8 tiles each, 4 k-steps over the queries): P^T and dS^T as A fragments by
//      ldmatrix .trans of the [query][key] tiles, dO and Q as B by .trans of theirs. dK, dV (64 + 64
//      registers a thread) live across the items.
//   3. warp (wm = w % 2, wn = w / 2): dQ = dS K for queries i0 + 32 wm.., columns 32 wn.. (2 x 4 tiles,
//      8 k-steps over the keys), added to dq_accum with fp32 atomics.
// Shared memory: K, V 64 KiB; 2 stages of Q, dO (32 KiB) and lse, D (512 B); P, dS 32 KiB: 161 KiB,
// within sm_80's 163 KiB and sm_90's 227 KiB, not sm_86/89's 99 (the launch then fails, naming it).
#include "core/backend.h"
#include "cuda/attention_bwd_items.cuh"
#include "cuda/attention_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/mma.cuh"

namespace l2e {
namespace cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr int D = 128, kKeys = 2 * kAttentionTileRows, kQ = 64, kWarps = 8, kThreads = 32 * kWarps;

template <int Stages>
struct SplitShape {
  static constexpr size_t stage = BwdStage<D, kQ>::bytes;
  static constexpr size_t smem = size_t(2 * kKeys * D) * sizeof(bf16) + Stages * stage + size_t(2 * kQ * kKeys) * sizeof(bf16);
};

template <int Stages>
__global__ void __launch_bounds__(kThreads)
    flash_bwd_split_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                           const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ Dvec,
                           const int32_t* cu, const int32_t* tiles, int T, int nh, int nkv, float scale_log2,
                           float scale, float* __restrict__ dq_accum, bf16* __restrict__ dk, bf16* __restrict__ dv) {
  constexpr int S = Stages;
  using Shape = SplitShape<Stages>;
  L2E_DYNAMIC_SHARED(uint4, smem_raw);
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);  // [kKeys][D]
  bf16* sV = sK + kKeys * D;                     // [kKeys][D]
  char* stages = reinterpret_cast<char*>(sV + kKeys * D);
  bf16* sP = reinterpret_cast<bf16*>(stages + S * Shape::stage);  // P [kQ][kKeys]
  bf16* sdS = sP + kQ * kKeys;                                     // dS [kQ][kKeys]
  auto stage = [&](int st) { return BwdStage<D, kQ>{stages + st * Shape::stage}; };  // attention_bwd_items.cuh

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int kvh = blockIdx.y, group = nh / nkv;
  const int seq = tiles[2 * blockIdx.x], k0 = tiles[2 * blockIdx.x + 1];
  if (k0 % kKeys != 0) return;  // the second tile of a pair: taken by the block of k0 - 64
  const int base = cu[seq], len = cu[seq + 1] - base;
  const size_t qs = size_t(nh) * D, ks = size_t(nkv) * D;
  const int nq = (len - k0 + kQ - 1) / kQ;  // query tiles at or after k0
  const BwdItems items{k0, base, len, group, kvh, nq, group * nq};
  auto issue = [&](int it) {  // item it into stage it % S, as one group (empty past the last item)
    if (it < items.count) issue_bwd_item<D, kQ>(stage(it % S), items, it, q, dout, lse, Dvec, T, nh, tid, kThreads);
    cp_async_commit();
  };
  cp_tile<D>(sK, k + size_t(base) * ks + size_t(kvh) * D, ks, k0, kKeys, len, tid, kThreads);
  cp_tile<D>(sV, v + size_t(base) * ks + size_t(kvh) * D, ks, k0, kKeys, len, tid, kThreads);
#pragma unroll
  for (int it = 0; it < S - 1; it++) issue(it);  // K and V join item 0's group

  // phase 2's tile: keys kr0 + 16 mt + g (+ 8), columns dc0 + 8 n + 2 t4
  const int kr0 = 32 * (warp % 4), dc0 = 64 * (warp / 4);
  float dK[2][8][4], dV[2][8][4];
#pragma unroll
  for (int mt = 0; mt < 2; mt++)
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
      for (int e = 0; e < 4; e++) dK[mt][n][e] = dV[mt][n][e] = 0.0f;
  // phases 1 and 3: query rows qr0 + 16 mt + g (+ 8); phase 1's keys kc0 + 8 n + 2 t4, phase 3's columns
  const int qr0 = 32 * (warp % 2), kc0 = 32 * (warp / 2);

  for (int it = 0; it < items.count; it++) {
    const int h = items.head(it), i0 = items.first_row(it, kQ), st = it % S;
    cp_async_wait<S - 2>();  // this thread's copies of item it have landed
    __syncthreads();         // everyone's have; item it - 1 (its stage, P, dS) is no longer read
    issue(it + S - 1);
    const BwdStage<D, kQ> cur = stage(st);
    const bf16 *Qs = cur.q(), *dOs = cur.dout();
    const float *Ls = cur.lse(), *Ds = cur.dvec();

    // ---- 1: S, dP -> P, dS ----
    {
      float s[2][4][4], dp[2][4][4];
#pragma unroll
      for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int n = 0; n < 4; n++)
#pragma unroll
          for (int e = 0; e < 4; e++) s[mt][n][e] = dp[mt][n][e] = 0.0f;
#pragma unroll 2
      for (int kk = 0; kk < D / 16; kk++) {
        uint32_t aq[2][4], ao[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
          frag_a<D>(aq[mt], Qs, qr0 + 16 * mt, kk * 16, lane);
          frag_a<D>(ao[mt], dOs, qr0 + 16 * mt, kk * 16, lane);
        }
#pragma unroll
        for (int n = 0; n < 4; n += 2) {
          uint32_t b[4];
          frag_b<D>(b, sK, kc0 + n * 8, kk * 16, lane);
#pragma unroll
          for (int mt = 0; mt < 2; mt++) {
            mma_bf16(s[mt][n], aq[mt], b[0], b[1]);
            mma_bf16(s[mt][n + 1], aq[mt], b[2], b[3]);
          }
          frag_b<D>(b, sV, kc0 + n * 8, kk * 16, lane);
#pragma unroll
          for (int mt = 0; mt < 2; mt++) {
            mma_bf16(dp[mt][n], ao[mt], b[0], b[1]);
            mma_bf16(dp[mt][n + 1], ao[mt], b[2], b[3]);
          }
        }
      }
      // a tile reaching the diagonal (its last key past its first query) or an end (warp-uniform)
      const bool masked = k0 + kc0 + 31 > i0 + qr0 || i0 + kQ > len || k0 + kKeys > len;
#pragma unroll
      for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
          const int r = qr0 + 16 * mt + g + 8 * rr, qi = i0 + r;
          const float nl = -Ls[r] * kLog2e, dr = Ds[r];
#pragma unroll
          for (int n = 0; n < 4; n++) {
            float p[2], ds[2];
#pragma unroll
            for (int e = 0; e < 2; e++) {
              const int kj = k0 + kc0 + 8 * n + 2 * t4 + e;
              p[e] = exp2_ftz(fmaf(s[mt][n][2 * rr + e], scale_log2, nl));
              if (masked && (kj > qi || qi >= len || kj >= len)) p[e] = 0.0f;
              ds[e] = p[e] * (dp[mt][n][2 * rr + e] - dr);
            }
            const int at = swz<kKeys>(r, kc0 + 8 * n + 2 * t4);
            *reinterpret_cast<uint32_t*>(sP + at) = pack_bf16(p[0], p[1]);
            *reinterpret_cast<uint32_t*>(sdS + at) = pack_bf16(ds[0], ds[1]);
          }
        }
    }
    __syncthreads();  // P, dS complete

    // ---- 2: dV += P^T dO, dK += dS^T Q ----
#pragma unroll
    for (int kq = 0; kq < kQ / 16; kq++) {
      uint32_t ap[2][4], as[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; mt++) {
        frag_a_t<kKeys>(ap[mt], sP, kr0 + 16 * mt, kq * 16, lane);
        frag_a_t<kKeys>(as[mt], sdS, kr0 + 16 * mt, kq * 16, lane);
      }
#pragma unroll
      for (int n = 0; n < 8; n += 2) {
        uint32_t b[4];
        frag_b_t<D>(b, dOs, dc0 + n * 8, kq * 16, lane);
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
          mma_bf16(dV[mt][n], ap[mt], b[0], b[1]);
          mma_bf16(dV[mt][n + 1], ap[mt], b[2], b[3]);
        }
        frag_b_t<D>(b, Qs, dc0 + n * 8, kq * 16, lane);
#pragma unroll
        for (int mt = 0; mt < 2; mt++) {
          mma_bf16(dK[mt][n], as[mt], b[0], b[1]);
          mma_bf16(dK[mt][n + 1], as[mt], b[2], b[3]);
        }
      }
    }

    // ---- 3: dQ = dS K ----
    {
      float acc[2][4][4];
#pragma unroll
      for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int n = 0; n < 4; n++) acc[mt][n][0] = acc[mt][n][1] = acc[mt][n][2] = acc[mt][n][3] = 0.0f;
#pragma unroll 2
      for (int kk = 0; kk < kKeys / 16; kk++) {
        uint32_t a[2][4];
#pragma unroll
        for (int mt = 0; mt < 2; mt++) frag_a<kKeys>(a[mt], sdS, qr0 + 16 * mt, kk * 16, lane);
#pragma unroll
        for (int n = 0; n < 4; n += 2) {
          uint32_t b[4];
          frag_b_t<D>(b, sK, kc0 + n * 8, kk * 16, lane);
#pragma unroll
          for (int mt = 0; mt < 2; mt++) {
            mma_bf16(acc[mt][n], a[mt], b[0], b[1]);
            mma_bf16(acc[mt][n + 1], a[mt], b[2], b[3]);
          }
        }
      }
#pragma unroll
      for (int mt = 0; mt < 2; mt++)
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
          const int qi = i0 + qr0 + 16 * mt + g + 8 * rr;
          if (qi >= len) continue;
          float* row = dq_accum + size_t(base + qi) * qs + size_t(h) * D + kc0 + 2 * t4;
#pragma unroll
          for (int n = 0; n < 4; n++) {
            atomicAdd(row + n * 8, acc[mt][n][2 * rr]);
            atomicAdd(row + n * 8 + 1, acc[mt][n][2 * rr + 1]);
          }
        }
    }
  }
  cp_async_wait<0>();  // the trailing (empty) group

#pragma unroll
  for (int mt = 0; mt < 2; mt++)
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
      const int kj = k0 + kr0 + 16 * mt + g + 8 * rr;
      if (kj >= len) continue;
      bf16* dkr = dk + size_t(base + kj) * ks + size_t(kvh) * D + dc0 + 2 * t4;
      bf16* dvr = dv + size_t(base + kj) * ks + size_t(kvh) * D + dc0 + 2 * t4;
#pragma unroll
      for (int n = 0; n < 8; n++) {
        *reinterpret_cast<uint32_t*>(dkr + n * 8) = pack_bf16(dK[mt][n][2 * rr] * scale, dK[mt][n][2 * rr + 1] * scale);
        *reinterpret_cast<uint32_t*>(dvr + n * 8) = pack_bf16(dV[mt][n][2 * rr], dV[mt][n][2 * rr + 1]);
      }
    }
}

template <int Stages>
void launch(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
            const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles, int num_tiles, float* dq_accum, void* dk,
            void* dv, cudaStream_t s) {
  using Shape = SplitShape<Stages>;
  static bool attr_set = false;
  if (!attr_set) {
    L2E_CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_split_kernel<Stages>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(Shape::smem)));
    attr_set = true;
  }
  const float scale = 1.0f / sqrtf(float(D)), scale_log2 = scale * kLog2e;
  L2E_LAUNCH(flash_bwd_split_kernel<Stages>, dim3(unsigned(num_tiles), unsigned(nkv)), kThreads, Shape::smem, s)(
      static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
      static_cast<const bf16*>(dout), lse, Dvec, cu, tiles, T, nh, nkv, scale_log2, scale, dq_accum,
      static_cast<bf16*>(dk), static_cast<bf16*>(dv));
  check_launch("flash_attention_backward_split");
}

}  // namespace

void flash_bwd_split_hd128(const void* q, const void* k, const void* v, const void* dout, const float* lse,
                           const float* Dvec, const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles,
                           int num_tiles, float* dq_accum, void* dk, void* dv, cudaStream_t s) {
  launch<2>(q, k, v, dout, lse, Dvec, cu, T, nh, nkv, tiles, num_tiles, dq_accum, dk, dv, s);
}

}  // namespace cuda
}  // namespace l2e
