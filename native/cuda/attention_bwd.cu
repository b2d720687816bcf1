// Flash-attention backward, causal, var-len, GQA, bf16 tensor cores, hd 64 / 128. P is recomputed
// from the saved lse, never stored:
//   s_ij = scale q_i . k_j (j <= i)     P_ij = exp(s_ij - lse_i)     o_i = sum_j P_ij v_j
//   dP_ij = dO_i . v_j                  D_i = dO_i . o_i  (= sum_j P_ij dP_ij, precomputed)
//   dS_ij = P_ij (dP_ij - D_i)          (softmax Jacobian)
//   dV_j = sum_i P_ij dO_i     dK_j = scale sum_i dS_ij q_i     dQ_i = scale sum_j dS_ij k_j
// GQA: a kv head serves nh/nkv query heads, so its dK, dV sum over them.
//
// One pass: a block owns Keys keys of one (sequence, kv head) (warp = 16 keys), keeps their K, V in
// shared memory and dK, dV in registers, and walks the group's query heads and the query tiles of kQ
// rows at or after its keys through a Stages-deep cp.async pipeline (Q, dO, lse, D of the next tiles
// land while this one is computed). Five matrix products per tile, each operand an ldmatrix of a
// swizzled tile:
//   S^T = K Q^T,  dP^T = V dO^T          (registers; P^T, dS^T from them, masked on the diagonal only)
//   dV += P^T dO,  dK += dS^T Q          (P^T, dS^T as A fragments straight from the C tiles)
//   dQ_tile = dS K                       (dS^T through shared memory; fp32 atomics into dq_accum)
// dq_accum [T, nh, hd] (zeroed here) is then scaled into bf16 dq. Not deterministic (the atomics'
// order); the sum is fp32.
//
// Tile variants (BwdVariant below, chosen by name at run time: kBwdVariants): Keys 64 (4 warps) or 128
// (8 warps), kQ 32 or 64, Stages 2 or 3, the S^T, dP^T loop fully unrolled or by 2. A 128-key block takes two consecutive 64-row tiles of the
// host schedule exactly as the forward's 128-row block does (attention_fwd.cu): the block of tile
// (seq, r) with r a multiple of 128 owns keys r .. r + 127, the block of r = 128 j + 64 exits at once.
// The dQ product splits its kQ x D tile over the warps: kQ / 16 row tiles, D / (warps per row tile)
// columns each.
#include <string>

#include "core/backend.h"
#include "cuda/attention_bwd_items.cuh"
#include "cuda/attention_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/mma.cuh"

namespace l2e {
namespace cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;

template <int HeadDim, int Keys, int QRows, int Stages, int KUnroll>
struct BwdShape {
  static_assert(Keys == kAttentionTileRows || Keys == 2 * kAttentionTileRows,
                "a block takes one or two schedule tiles");
  static constexpr int D = HeadDim, kKeys = Keys, kQ = QRows, kStages = Stages, kWarps = Keys / 16;
  static constexpr int kUnroll = KUnroll;  // head-dim steps of the S^T, dP^T loop unrolled (D / 16: all)
  // K, V; Stages stages of Q, dO [kQ][D] and lse, D [kQ]; dS^T [Keys][kQ]
  static constexpr size_t stage = BwdStage<D, kQ>::bytes;
  static constexpr size_t smem =
      size_t(2 * Keys * D) * sizeof(bf16) + Stages * stage + size_t(Keys * kQ) * sizeof(bf16);
};

template <class Shape>
__global__ void __launch_bounds__(Shape::kWarps * 32)
    flash_bwd_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                     const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ Dvec,
                     const int32_t* cu, const int32_t* tiles, int T, int nh, int nkv, float scale_log2,
                     float scale, float* __restrict__ dq_accum, bf16* __restrict__ dk, bf16* __restrict__ dv) {
  constexpr int D = Shape::D, kKeys = Shape::kKeys, kQ = Shape::kQ, S = Shape::kStages, kWarps = Shape::kWarps;
  L2E_DYNAMIC_SHARED(uint4, smem_raw);
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);  // [kKeys][D]
  bf16* sV = sK + kKeys * D;                     // [kKeys][D]
  char* stages = reinterpret_cast<char*>(sV + kKeys * D);
  bf16* sdS = reinterpret_cast<bf16*>(stages + S * Shape::stage);  // dS^T [kKeys][kQ]
  auto stage = [&](int st) { return BwdStage<D, kQ>{stages + st * Shape::stage}; };  // attention_bwd_items.cuh

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int kvh = blockIdx.y, group = nh / nkv;
  const int seq = tiles[2 * blockIdx.x], k0 = tiles[2 * blockIdx.x + 1];
  if (k0 % kKeys != 0) return;  // a 128-key block's second tile: taken by the block of k0 - 64
  const int base = cu[seq], len = cu[seq + 1] - base;
  const size_t qs = size_t(nh) * D, ks = size_t(nkv) * D;
  const int nq = (len - k0 + kQ - 1) / kQ;  // query tiles at or after k0 (earlier queries see none of these keys)
  const BwdItems items{k0, base, len, group, kvh, nq, group * nq};
  auto issue = [&](int it) {  // item it into stage it % S, as one group (empty past the last item)
    if (it < items.count) issue_bwd_item<D, kQ>(stage(it % S), items, it, q, dout, lse, Dvec, T, nh, tid, kWarps * 32);
    cp_async_commit();
  };
  cp_tile<D>(sK, k + size_t(base) * ks + size_t(kvh) * D, ks, k0, kKeys, len, tid, kWarps * 32);
  cp_tile<D>(sV, v + size_t(base) * ks + size_t(kvh) * D, ks, k0, kKeys, len, tid, kWarps * 32);
#pragma unroll
  for (int it = 0; it < S - 1; it++) issue(it);  // K and V join item 0's group

  float dK[D / 8][4], dV[D / 8][4];  // this warp's 16 keys x D
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dK[n][e] = dV[n][e] = 0.0f;
  const int key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
  // dQ = dS K split over the warps: m-tile mt of the kQ queries, kCols of the D columns from nc0.
  constexpr int kMTiles = kQ / 16, kWarpsPerM = kWarps / kMTiles, kCols = D / kWarpsPerM;
  static_assert(kWarps % kMTiles == 0 && kCols % 16 == 0, "each warp computes 16 queries x kCols columns of dQ");
  const int mt = warp % kMTiles, nc0 = (warp / kMTiles) * kCols;
  // columns per pass: fewer live accumulators beside dK, dV at hd 128
  constexpr int kDqCols = kCols < (D == 128 ? 32 : 64) ? kCols : (D == 128 ? 32 : 64);

  for (int it = 0; it < items.count; it++) {
    const int h = items.head(it), i0 = items.first_row(it, kQ), st = it % S;
    cp_async_wait<S - 2>();  // this thread's copies of item it have landed
    __syncthreads();         // everyone's have; item it - 1 (its stage, dS^T) is no longer read
    issue(it + S - 1);
    const BwdStage<D, kQ> cur = stage(st);
    const bf16 *Qs = cur.q(), *dOs = cur.dout();
    const float *Ls = cur.lse(), *Ds = cur.dvec();

    float sT[kQ / 8][4], dpT[kQ / 8][4];  // S^T and dP^T: 16 keys x kQ queries
#pragma unroll
    for (int j = 0; j < kQ / 8; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) sT[j][e] = dpT[j][e] = 0.0f;
#pragma unroll(Shape::kUnroll)
    for (int kk = 0; kk < D / 16; kk++) {
      uint32_t ak[4], av[4];
      frag_a<D>(ak, sK, warp * 16, kk * 16, lane);
      frag_a<D>(av, sV, warp * 16, kk * 16, lane);
#pragma unroll
      for (int j = 0; j < kQ / 8; j += 2) {
        uint32_t b[4];
        frag_b<D>(b, Qs, j * 8, kk * 16, lane);
        mma_bf16(sT[j], ak, b[0], b[1]);
        mma_bf16(sT[j + 1], ak, b[2], b[3]);
        frag_b<D>(b, dOs, j * 8, kk * 16, lane);
        mma_bf16(dpT[j], av, b[0], b[1]);
        mma_bf16(dpT[j + 1], av, b[2], b[3]);
      }
    }
    // sT <- P^T, dpT <- dS^T (C layout: row = key[e >> 1], column = query j*8 + 2 t4 + (e & 1)).
    // Only a tile reaching the diagonal or a sequence end needs the mask (warp-uniform test).
    const bool masked = k0 + warp * 16 + 15 > i0 || i0 + kQ > len || k0 + kKeys > len;
#pragma unroll
    for (int j = 0; j < kQ / 8; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = j * 8 + 2 * t4 + (e & 1), qi = i0 + r, kj = key[e >> 1];
        float p = exp2_ftz(fmaf(sT[j][e], scale_log2, -Ls[r] * kLog2e));
        if (masked && (kj > qi || qi >= len || kj >= len)) p = 0.0f;
        sT[j][e] = p;
        dpT[j][e] = p * (dpT[j][e] - Ds[r]);
      }
#pragma unroll
    for (int j = 0; j < kQ / 8; j++)
#pragma unroll
      for (int rr = 0; rr < 2; rr++)
        *reinterpret_cast<uint32_t*>(sdS + swz<kQ>(warp * 16 + g + 8 * rr, j * 8 + 2 * t4)) =
            pack_bf16(dpT[j][2 * rr], dpT[j][2 * rr + 1]);
    // dV += P^T dO, dK += dS^T Q: the C tiles of queries 16kq.. are A fragments (see mma.cuh)
#pragma unroll
    for (int kq = 0; kq < kQ / 16; kq++) {
      uint32_t ap[4], as[4];
      c_to_a(ap, sT[2 * kq], sT[2 * kq + 1]);
      c_to_a(as, dpT[2 * kq], dpT[2 * kq + 1]);
#pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        uint32_t b[4];
        frag_b_t<D>(b, dOs, n * 8, kq * 16, lane);
        mma_bf16(dV[n], ap, b[0], b[1]);
        mma_bf16(dV[n + 1], ap, b[2], b[3]);
        frag_b_t<D>(b, Qs, n * 8, kq * 16, lane);
        mma_bf16(dK[n], as, b[0], b[1]);
        mma_bf16(dK[n + 1], as, b[2], b[3]);
      }
    }
    __syncthreads();  // dS^T complete
#pragma unroll
    for (int c0 = nc0; c0 < nc0 + kCols; c0 += kDqCols) {
      float acc[kDqCols / 8][4];  // dQ for queries i0 + 16 mt .., columns c0 ..
#pragma unroll
      for (int n = 0; n < kDqCols / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; kk++) {
        uint32_t a[4];
        frag_a_t<kQ>(a, sdS, mt * 16, kk * 16, lane);
#pragma unroll
        for (int n = 0; n < kDqCols / 8; n += 2) {
          uint32_t b[4];
          frag_b_t<D>(b, sK, c0 + n * 8, kk * 16, lane);
          mma_bf16(acc[n], a, b[0], b[1]);
          mma_bf16(acc[n + 1], a, b[2], b[3]);
        }
      }
#pragma unroll
      for (int rr = 0; rr < 2; rr++) {
        const int qi = i0 + mt * 16 + g + 8 * rr;
        if (qi >= len) continue;
        float* row = dq_accum + size_t(base + qi) * qs + size_t(h) * D + c0 + 2 * t4;
#pragma unroll
        for (int n = 0; n < kDqCols / 8; n++) {
          atomicAdd(row + n * 8, acc[n][2 * rr]);
          atomicAdd(row + n * 8 + 1, acc[n][2 * rr + 1]);
        }
      }
    }
  }
  cp_async_wait<0>();  // the trailing (empty) group

#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    if (key[rr] >= len) continue;
    bf16* dkr = dk + size_t(base + key[rr]) * ks + size_t(kvh) * D;
    bf16* dvr = dv + size_t(base + key[rr]) * ks + size_t(kvh) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++) {
      *reinterpret_cast<uint32_t*>(dkr + n * 8 + 2 * t4) = pack_bf16(dK[n][2 * rr] * scale, dK[n][2 * rr + 1] * scale);
      *reinterpret_cast<uint32_t*>(dvr + n * 8 + 2 * t4) = pack_bf16(dV[n][2 * rr], dV[n][2 * rr + 1]);
    }
  }
}

// dq = bf16(scale dq_accum), element-wise over [T, nh, hd].
__global__ void dq_convert_kernel(const float* __restrict__ acc, size_t n, float scale, bf16* __restrict__ dq) {
  L2E_GRID_STRIDE(i, n) dq[i] = __float2bfloat16_rn(acc[i] * scale);
}

// dq_accum zeroed, run() (a kernel adding dQ / scale into it), then dq = bf16(scale dq_accum).
template <class Run>
void with_dq_accum(float* dq_accum, void* dq, int T, int nh, int D, cudaStream_t s, Run run) {
  const size_t n = size_t(T) * nh * D;
  L2E_CUDA_CHECK(cudaMemsetAsync(dq_accum, 0, n * sizeof(float), s));
  run();
  L2E_LAUNCH(dq_convert_kernel, grid_for(n, 256), 256, 0, s)(dq_accum, n, 1.0f / sqrtf(float(D)), static_cast<bf16*>(dq));
  check_launch("flash_attention_backward_dq");
}

template <int D, int Keys, int kQ, int Stages, int KUnroll = D / 16>
void launch(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
            const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles, int num_tiles, float* dq_accum, void* dq,
            void* dk, void* dv, cudaStream_t s) {
  using Shape = BwdShape<D, Keys, kQ, Stages, KUnroll>;
  if (num_tiles == 0) return;
  static bool attr_set = false;
  if (!attr_set) {
    L2E_CUDA_CHECK(cudaFuncSetAttribute(flash_bwd_kernel<Shape>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(Shape::smem)));
    attr_set = true;
  }
  const float scale = 1.0f / sqrtf(float(D)), scale_log2 = scale * kLog2e;
  with_dq_accum(dq_accum, dq, T, nh, D, s, [&] {
    L2E_LAUNCH(flash_bwd_kernel<Shape>, dim3(unsigned(num_tiles), unsigned(nkv)), Shape::kWarps * 32, Shape::smem, s)(
        static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v),
        static_cast<const bf16*>(dout), lse, Dvec, cu, tiles, T, nh, nkv, scale_log2, scale, dq_accum,
        static_cast<bf16*>(dk), static_cast<bf16*>(dv));
    check_launch("flash_attention_backward");
  });
}

// The split-layout backward (attention_bwd_split.cu), hd 128.
void launch_split(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
                  const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles, int num_tiles, float* dq_accum,
                  void* dq, void* dk, void* dv, cudaStream_t s) {
  if (num_tiles == 0) return;
  with_dq_accum(dq_accum, dq, T, nh, 128, s, [&] {
    flash_bwd_split_hd128(q, k, v, dout, lse, Dvec, cu, T, nh, nkv, tiles, num_tiles, dq_accum, dk, dv, s);
  });
}

// The wgmma backward (attention_bwd_sm90.cu) in Stages stages, loaded by cp.async or (Producer) by a TMA
// producer warp, dQ added by atomics or (TmaDq) by TMA reduce-add, where the sm_90a kernels run.
template <int D, int Stages, bool Producer = false, bool TmaDq = false>
void launch_sm90(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
                 const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles, int num_tiles, float* dq_accum,
                 void* dq, void* dk, void* dv, cudaStream_t s) {
  if (!sm90_fwd_available())
    throw Error(std::string("attention variant 'sm90") + (Producer ? "ws" : "") + "k128q64s" + std::to_string(Stages) +
                (TmaDq ? "r" : "") + "' needs a compute capability 9.0 GPU (H100/H200) and a build with sm_90a");
  if (num_tiles == 0) return;
  with_dq_accum(dq_accum, dq, T, nh, D, s, [&] {
    flash_bwd_sm90(q, k, v, dout, lse, Dvec, cu, T, nh, nkv, D, tiles, num_tiles, dq_accum, dk, dv, Stages, Producer,
                   TmaDq, s);
  });
}

using BwdLaunch = void (*)(const void*, const void*, const void*, const void*, const float*, const float*,
                           const int32_t*, int, int, int, const int32_t*, int, float*, void*, void*, void*,
                           cudaStream_t);
struct BwdVariant {
  const char* name;  // k<Keys>q<kQ>w<warps>s<Stages>[u<KUnroll>][p: P, dS through shared memory][r: dQ by TMA]
  BwdLaunch hd64;    // nullptr: not instantiated at this head dim
  BwdLaunch hd128;
};
// [0] is the default (the shapes used unless a variant is named, or when "default" is: kQ 32 at hd 128
// for the register budget, where the device has shared memory for no larger shape: default_hd128
// below); the rest hd 128 only, k64q32w4s2u2 being [0]'s hd 128 shape under its own name. The fully
// unrolled S^T, dP^T loop (k64q32w4s2) needs more than 255 registers at hd 128: ptxas (nvcc 13.0) spills
// 24 / 36 bytes (stores / loads) at sm_80, sm_86 and sm_89, 20 / 32 at sm_90. Unrolled by 2 (u2) it
// does not spill, for every shape here (239 to 243 registers). k128q64w8s2p is the split-layout kernel
// (attention_bwd_split.cu: FlashAttention-2's warp tiles, 161 KiB), not yet run on a GPU. sm90k128q64s2
// and s3 are the wgmma kernel (attention_bwd_sm90.cu) in 2 or 3 stages, hd 64 and 128, on compute
// capability 9.0 with the sm_90a image only; sm90ws... the same kernel fed by a TMA producer warp, and
// sm90wsk128q64s2r that one adding dQ by TMA reduce-add instead of atomics; not yet run on a GPU.
constexpr BwdVariant kBwdVariants[] = {
    {"default", launch<64, 64, 64, 2>, launch<128, 64, 32, 2, 2>},
    {"k64q32w4s2", nullptr, launch<128, 64, 32, 2>},
    {"k64q32w4s2u2", nullptr, launch<128, 64, 32, 2, 2>},
    {"k64q32w4s3u2", nullptr, launch<128, 64, 32, 3, 2>},
    {"k128q32w8s2u2", nullptr, launch<128, 128, 32, 2, 2>},
    {"k128q32w8s3u2", nullptr, launch<128, 128, 32, 3, 2>},
    {"k128q64w8s2p", nullptr, launch_split},
    {"sm90k128q64s2", launch_sm90<64, 2>, launch_sm90<128, 2>},
    {"sm90k128q64s3", launch_sm90<64, 3>, launch_sm90<128, 3>},
    {"sm90wsk128q64s2", launch_sm90<64, 2, true>, launch_sm90<128, 2, true>},
    {"sm90wsk128q64s3", launch_sm90<64, 3, true>, launch_sm90<128, 3, true>},
    {"sm90wsk128q64s2r", launch_sm90<64, 2, true, true>, launch_sm90<128, 2, true, true>},
};

// The hd-128 default: the fastest shape the device's shared memory allows. k128q32w8s3u2 (121 KiB) ran
// fwd+bwd 4% / 6% faster than k64q32w4s2 at S = 2048 / 8192 on an H200
// (bench/results/2026-11-30-NVIDIA-H200-profile.txt); sm_86 and sm_89 allow 99 KiB a block, so there
// it is k64q32w4s2u2 (68.5 KiB), [0]'s own hd-128 shape. It is there rather than k64q32w4s2 (the same
// tiles fully unrolled) for ptxas's spill count (above; test/cuda-compile.test.ts checks the sm_86
// image), not a timing on such a card: on the H200 the two ran within 1% of each other, k64q32w4s2
// 145.5 / 159.8 TFLOP/s and k64q32w4s2u2 144.0 / 158.9 at S = 2048 / 8192. Read once, from device 0
// (as the backend uses).
int default_hd128() {
  static const int chosen = [] {
    auto index = [](const char* name) {
      for (size_t i = 0; i < sizeof(kBwdVariants) / sizeof(kBwdVariants[0]); i++)
        if (std::string(kBwdVariants[i].name) == name) return int(i);
      return 0;
    };
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return prop.sharedMemPerBlockOptin >= BwdShape<128, 128, 32, 3, 2>::smem ? index("k128q32w8s3u2") : 0;
  }();
  return chosen;
}

}  // namespace

size_t flash_bwd_workspace(int T, int nh, int hd) { return size_t(T) * nh * hd * sizeof(float); }

std::vector<std::string> flash_bwd_variants() {
  std::vector<std::string> names;
  for (const BwdVariant& v : kBwdVariants) names.push_back(v.name);
  return names;
}

void flash_bwd(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
               const int32_t* cu, int T, int nh, int nkv, int hd, const int32_t* tiles, int num_tiles, float* dq_accum,
               void* dq, void* dk, void* dv, int variant, cudaStream_t s) {
  if (hd != 64 && hd != 128)
    throw Error("flash attention backward: head_dim " + std::to_string(hd) + " has no tensor-core kernel");
  const BwdVariant& bv = kBwdVariants[variant == 0 && hd == 128 ? default_hd128() : variant];
  const BwdLaunch run = hd == 64 ? bv.hd64 : bv.hd128;
  if (!run)
    throw Error(std::string("attention variant '") + bv.name + "' has no head_dim " + std::to_string(hd) +
                " instantiation (the default has)");
  run(q, k, v, dout, lse, Dvec, cu, T, nh, nkv, tiles, num_tiles, dq_accum, dq, dk, dv, s);
}

}  // namespace cuda
}  // namespace l2e
