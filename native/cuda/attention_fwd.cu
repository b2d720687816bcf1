// Flash-attention forward, causal, var-len, GQA, bf16 tensor cores (mma.sync m16n8k16), hd 64 / 128.
//
// Block = Rows query rows of one (sequence, head), Rows / (16 RowTiles) warps; each warp owns RowTiles
// m-tiles of 16 rows. Keys stream in tiles of Keys through a Stages-deep cp.async pipeline of K/V stages
// (swizzled, see mma.cuh); every operand fragment is an ldmatrix (Q and K plain, V .trans). Per tile,
// with raw scores s = q.k and c = scale log2 e folded into the one FMA before each exp2 (the SFU's alone:
// exp2_ftz, device_utils.cuh):
//   m_new = max(m, max_j s_j),  a = 2^(c (m - m_new)),  l = a l + sum_j 2^(c s_j - c m_new),
//   o = a o + sum_j bf16(2^(c s_j - c m_new)) v_j
// and at the end o /= l, lse = (c m + log2 l) ln 2 (natural log, as the op table defines it).
// Masked scores (key > query, key past the sequence) are -inf; only tiles reaching a warp's diagonal
// (the last ones, keys up to the block's last row) can hold them, so only they are masked, and a warp
// skips a key tile that lies wholly after its rows (and every tile when none of its rows is in the
// sequence). No S x S matrix is formed.
//
// Rows per warp (RowTiles): a warp's K fragment (ldmatrix of K_j) feeds the MMAs of each of its m-tiles,
// and so does its V fragment, so two m-tiles (32 rows, FlashAttention-2's warp tile) halve the K and V
// bytes read from shared memory per MMA: per 16-dim k-step of S and 16 keys x 16 dims of P V, one x4
// ldmatrix for 2 RowTiles MMAs. Registers: O is RowTiles D / 2 floats a thread, S RowTiles Keys / 4, and
// the warp's Q fragments (RowTiles D / 8 registers) stay in registers only up to 32 of them (one m-tile
// at hd 128; else they are read from sQ at each k-step, one x4 ldmatrix per m-tile). With 32-row warps
// a = 1 exactly when m did not grow, and O's rescale is skipped when no row of the warp's 8-row half
// grew (a warp vote): the same result, and it keeps ptxas within 255 registers on sm_90.
//
// Tile variants (FwdVariant below, chosen by name at run time: kFwdVariants): Rows 64 or 128, warps of
// 16 or 32 rows, Keys 32, 64 or 128, Stages 2 or 3. The host schedule (Batch::tiles) has 64-row tiles, per
// sequence in decreasing row order; a 128-row block takes two consecutive tiles of one sequence: the
// block of tile (seq, r) with r a multiple of 128 computes rows r .. r + 127 (the second half may lie
// past the sequence: masked, not stored), and the block of a tile with r = 128 j + 64 exits at once
// (its rows belong to the block of r - 64). So the grid is the same num_tiles x heads for every
// variant, and the longest blocks still start first.
//
// Pipeline: tile i is one cp.async group (Q joins tile 0's). Before computing tile i a thread waits
// for all but its Stages - 2 newest groups, the barrier makes every thread's copies visible and
// frees the stage of tile i - 1, which then receives tile i + Stages - 1.
#include "core/backend.h"
#include "cuda/attention_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/mma.cuh"

namespace l2e {
namespace cuda {

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int HeadDim, int Rows, int Keys, int Stages, int RowTiles>
struct FwdShape {
  static_assert(Rows == kAttentionTileRows || Rows == 2 * kAttentionTileRows,
                "a block takes one or two schedule tiles");
  static_assert(RowTiles == 1 || RowTiles == 2, "a warp owns 16 or 32 rows");
  static constexpr int D = HeadDim, kRows = Rows, kKeys = Keys, kStages = Stages, kMt = RowTiles;
  static constexpr int kWarps = Rows / (16 * RowTiles), kWarpRows = 16 * RowTiles;
  static constexpr bool kQInRegs = RowTiles * D <= 128;  // RowTiles D / 8 <= 32 registers
  // k-steps of S = Q K^T unrolled: all with Q in registers, else none (unrolled, at hd 128, ptxas hoists
  // the ldmatrix of Q and K past 255 registers and spills on sm_80, sm_90 or both)
  static constexpr int kSUnroll = kQInRegs ? D / 16 : 1;
  // O's rescale skipped when no row of the warp's half raised its max (header): 32-row warps only (the
  // unconditional rescale of all 128 O registers makes ptxas spill on sm_90 at hd 128); the 16-row
  // shapes stay as measured
  static constexpr bool kSkipRescale = RowTiles == 2;
  static constexpr size_t smem = size_t(Rows + 2 * Stages * Keys) * D * sizeof(bf16);
};

template <class Shape>
__global__ void __launch_bounds__(Shape::kWarps * 32)
    flash_fwd_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                     const int32_t* cu, const int32_t* tiles, int T, int nh, int nkv, float scale_log2,
                     bf16* __restrict__ out, float* __restrict__ lse) {
  constexpr int D = Shape::D, kRows = Shape::kRows, kKeys = Shape::kKeys, S = Shape::kStages, kWarps = Shape::kWarps;
  constexpr int kMt = Shape::kMt, kWarpRows = Shape::kWarpRows;
  L2E_DYNAMIC_SHARED(uint4, smem_raw);
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [kRows][D]
  bf16* sKV = sQ + kRows * D;                     // S stages of K [kKeys][D] then V [kKeys][D]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int h = blockIdx.y, kvh = h / (nh / nkv);
  const int seq = tiles[2 * blockIdx.x], q0 = tiles[2 * blockIdx.x + 1];
  if (q0 % kRows != 0) return;  // a 128-row block's second tile: taken by the block of q0 - 64
  const int base = cu[seq], len = cu[seq + 1] - base;
  const size_t qs = size_t(nh) * D, ks = size_t(nkv) * D;  // row strides
  const bf16* qh = q + size_t(base) * qs + size_t(h) * D;
  const bf16* kh = k + size_t(base) * ks + size_t(kvh) * D;
  const bf16* vh = v + size_t(base) * ks + size_t(kvh) * D;

  const int kend = min(len, q0 + kRows);  // causal: keys up to the block's last query
  const int ntiles = (kend + kKeys - 1) / kKeys;
  auto issue = [&](int i) {  // tile i into stage i % S, as one group (empty past the last tile)
    if (i < ntiles) {
      bf16* sK = sKV + (i % S) * 2 * kKeys * D;
      cp_tile<D>(sK, kh, ks, i * kKeys, kKeys, len, tid, kWarps * 32);
      cp_tile<D>(sK + kKeys * D, vh, ks, i * kKeys, kKeys, len, tid, kWarps * 32);
    }
    cp_async_commit();
  };
  cp_tile<D>(sQ, qh, qs, q0, kRows, len, tid, kWarps * 32);
#pragma unroll
  for (int i = 0; i < S - 1; i++) issue(i);

  const int r0 = warp * kWarpRows;
  constexpr bool kQInRegs = Shape::kQInRegs;
  // this warp's Q as A fragments, m-tile mt = rows r0 + 16 mt.. (kept only when kQInRegs)
  uint32_t qf[kQInRegs ? kMt : 1][kQInRegs ? D / 16 : 1][4];
  float o[kMt][D / 8][4];
#pragma unroll
  for (int mt = 0; mt < kMt; mt++)
#pragma unroll
    for (int n = 0; n < D / 8; n++) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.0f;
  float m[kMt][2], l[kMt][2];
#pragma unroll
  for (int mt = 0; mt < kMt; mt++) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.0f;
  // this thread's query row (sequence-relative) of m-tile mt, half rr (rows g, g + 8)
  auto row = [&](int mt, int rr) { return q0 + r0 + 16 * mt + g + 8 * rr; };

  for (int i = 0; i < ntiles; i++) {
    cp_async_wait<S - 2>();  // this thread's copies of tile i (and Q) have landed
    __syncthreads();         // everyone's have; everyone is done with tile i - 1's stage
    issue(i + S - 1);
    if constexpr (kQInRegs) {
      if (i == 0) {
#pragma unroll
        for (int mt = 0; mt < kMt; mt++)
#pragma unroll
          for (int kk = 0; kk < D / 16; kk++) frag_a<D>(qf[mt][kk], sQ, r0 + 16 * mt, kk * 16, lane);
      }
    }
    const bf16* sK = sKV + (i % S) * 2 * kKeys * D;
    const bf16* sV = sK + kKeys * D;
    const int k0 = i * kKeys;
    // every key after this warp's rows, or no row of the warp in the sequence (warp-uniform)
    if (k0 > q0 + r0 + kWarpRows - 1 || q0 + r0 >= len) continue;

    float s[kMt][kKeys / 8][4];  // S = Q K^T for m-tile mt's 16 rows x kKeys keys
#pragma unroll
    for (int mt = 0; mt < kMt; mt++)
#pragma unroll
      for (int j = 0; j < kKeys / 8; j++) s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.0f;
#pragma unroll(Shape::kSUnroll)
    for (int kk = 0; kk < D / 16; kk++) {
      uint32_t qa[kMt][4];  // the k-step's Q fragments: kept, or read from sQ
#pragma unroll
      for (int mt = 0; mt < kMt; mt++) {
        if constexpr (kQInRegs) {
#pragma unroll
          for (int r = 0; r < 4; r++) qa[mt][r] = qf[mt][kk][r];
        } else {
          frag_a<D>(qa[mt], sQ, r0 + 16 * mt, kk * 16, lane);
        }
      }
#pragma unroll
      for (int j = 0; j < kKeys / 8; j += 2) {
        uint32_t b[4];
        frag_b<D>(b, sK, j * 8, kk * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMt; mt++) {
          mma_bf16(s[mt][j], qa[mt], b[0], b[1]);
          mma_bf16(s[mt][j + 1], qa[mt], b[2], b[3]);
        }
      }
    }
    if (k0 + kKeys - 1 > q0 + r0 || k0 + kKeys > len) {  // reaches the diagonal or the end (warp-uniform)
#pragma unroll
      for (int mt = 0; mt < kMt; mt++)
#pragma unroll
        for (int j = 0; j < kKeys / 8; j++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const int key = k0 + j * 8 + 2 * t4 + (e & 1);
            if (key > row(mt, e >> 1) || key >= len) s[mt][j][e] = -INFINITY;
          }
    }

#pragma unroll
    for (int mt = 0; mt < kMt; mt++)
#pragma unroll
      for (int rr = 0; rr < 2; rr++) {
        float mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < kKeys / 8; j++) mx = fmaxf(mx, fmaxf(s[mt][j][2 * rr], s[mt][j][2 * rr + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mnew = fmaxf(m[mt][rr], mx);
        const float ref = mnew == -INFINITY ? 0.0f : mnew * scale_log2;  // fully masked row: 0, not NaN
        const bool grew = mnew != m[mt][rr];
        const float corr = Shape::kSkipRescale && !grew ? 1.0f : exp2_ftz(fmaf(m[mt][rr], scale_log2, -ref));
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < kKeys / 8; j++)
#pragma unroll
          for (int e = 0; e < 2; e++) {
            const float p = exp2_ftz(fmaf(s[mt][j][2 * rr + e], scale_log2, -ref));
            s[mt][j][2 * rr + e] = p;
            sum += p;
          }
        l[mt][rr] = l[mt][rr] * corr + sum;  // per-thread partial; the quad's partials are summed at the end
        m[mt][rr] = mnew;
        if (!Shape::kSkipRescale || __any_sync(0xffffffffu, grew)) {
#pragma unroll
          for (int n = 0; n < D / 8; n++) {
            o[mt][n][2 * rr] *= corr;
            o[mt][n][2 * rr + 1] *= corr;
          }
        }
      }

    // O += P V: P's C tiles (keys 16kk..16kk+15 = n-tiles 2kk, 2kk+1) are the A fragment.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; kk++) {
      uint32_t a[kMt][4];
#pragma unroll
      for (int mt = 0; mt < kMt; mt++) c_to_a(a[mt], s[mt][2 * kk], s[mt][2 * kk + 1]);
#pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        uint32_t b[4];
        frag_b_t<D>(b, sV, n * 8, kk * 16, lane);
#pragma unroll
        for (int mt = 0; mt < kMt; mt++) {
          mma_bf16(o[mt][n], a[mt], b[0], b[1]);
          mma_bf16(o[mt][n + 1], a[mt], b[2], b[3]);
        }
      }
    }
  }
  cp_async_wait<0>();  // the trailing (empty) groups: leave nothing in flight

  // O / l goes through this warp's own rows of sQ (which only this warp reads, and no longer) so that
  // the global stores are whole 16-byte chunks of rows.
#pragma unroll
  for (int mt = 0; mt < kMt; mt++)
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
      float lsum = l[mt][rr];
      lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
      lsum += __shfl_xor_sync(0xffffffffu, lsum, 2);
      const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;  // 0: a row past the sequence (not stored)
#pragma unroll
      for (int n = 0; n < D / 8; n++)
        *reinterpret_cast<uint32_t*>(sQ + swz<D>(r0 + 16 * mt + g + 8 * rr, n * 8 + 2 * t4)) =
            pack_bf16(o[mt][n][2 * rr] * inv, o[mt][n][2 * rr + 1] * inv);
      if (t4 == 0 && row(mt, rr) < len)
        lse[size_t(h) * T + base + row(mt, rr)] = (m[mt][rr] * scale_log2 + log2f(lsum)) * kLn2;
    }
  __syncthreads();
  constexpr int kChunks = D / 8;
  for (int c = tid; c < kRows * kChunks; c += kWarps * 32) {
    const int r = c / kChunks, col = (c % kChunks) * 8;
    if (q0 + r < len)
      *reinterpret_cast<uint4*>(out + size_t(base + q0 + r) * qs + size_t(h) * D + col) =
          *reinterpret_cast<const uint4*>(sQ + swz<D>(r, col));
  }
}

template <int D, int Rows, int Keys, int Stages, int RowTiles = 1>
void launch(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles,
            int num_tiles, void* out, float* lse, cudaStream_t s) {
  using Shape = FwdShape<D, Rows, Keys, Stages, RowTiles>;
  if (num_tiles == 0) return;
  static bool attr_set = false;  // per device function; harmless to repeat
  if (!attr_set) {
    L2E_CUDA_CHECK(cudaFuncSetAttribute(flash_fwd_kernel<Shape>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        int(Shape::smem)));
    attr_set = true;
  }
  const float scale_log2 = kLog2e / sqrtf(float(D));
  const dim3 grid(static_cast<unsigned>(num_tiles), static_cast<unsigned>(nh));
  L2E_LAUNCH(flash_fwd_kernel<Shape>, grid, Shape::kWarps * 32, Shape::smem, s)(
      static_cast<const bf16*>(q), static_cast<const bf16*>(k), static_cast<const bf16*>(v), cu, tiles, T, nh, nkv,
      scale_log2, static_cast<bf16*>(out), lse);
  check_launch("flash_attention_forward");
}

using FwdLaunch = void (*)(const void*, const void*, const void*, const int32_t*, int, int, int, const int32_t*, int,
                           void*, float*, cudaStream_t);
struct FwdVariant {
  const char* name;  // q<Rows>w<warps>k<Keys>s<Stages> (a warp's rows: Rows / warps)
  FwdLaunch hd64;    // nullptr: not instantiated at this head dim
  FwdLaunch hd128;
};
// [0] is the default (the shapes used unless a variant is named); the rest hd 128 only. At hd 128 the
// default is q128w8k64s2, the fastest shape that fits every sm_80+ GPU's shared memory (96 KiB; sm_86 and
// sm_89 allow 99): on an H200 (bench/results/2026-11-30-NVIDIA-H200-profile.txt) it ran 221.6 / 248.2
// TFLOP/s at S = 2048 / 8192 against 185.1 / 200.6 for q64w4k64s2, the earlier default; q128w8k64s3
// (128 KiB) was within 1% of it. In a sweep, "default" and its named shape differ by the run-to-run noise.
// q128w4k64s2 is FlashAttention-2's hd-128 block (128 rows x 64 keys, 4 warps of 32 rows: half the K and
// V shared-memory reads per MMA) in q128w8k64s2's 96 KiB, q128w4k32s2 / s3 the same with 32-key tiles
// (64 / 80 KiB); not yet run on a GPU. A third stage at 64 keys (s3 beside s2 was within 1% at 16 rows a
// warp) makes ptxas spill on sm_90 at 255 registers.
constexpr FwdVariant kFwdVariants[] = {
    {"default", launch<64, 64, 64, 3>, launch<128, 128, 64, 2>},
    {"q64w4k64s2", nullptr, launch<128, 64, 64, 2>},
    {"q64w4k64s3", nullptr, launch<128, 64, 64, 3>},
    {"q128w8k64s2", nullptr, launch<128, 128, 64, 2>},
    {"q128w8k64s3", nullptr, launch<128, 128, 64, 3>},
    {"q64w4k128s2", nullptr, launch<128, 64, 128, 2>},
    {"q128w4k64s2", nullptr, launch<128, 128, 64, 2, 2>},
    {"q128w4k32s2", nullptr, launch<128, 128, 32, 2, 2>},
    {"q128w4k32s3", nullptr, launch<128, 128, 32, 3, 2>},
};

}  // namespace

std::vector<std::string> flash_fwd_variants() {
  std::vector<std::string> names;
  for (const FwdVariant& v : kFwdVariants) names.push_back(v.name);
  return names;
}

void flash_fwd(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv, int hd,
               const int32_t* tiles, int num_tiles, void* out, float* lse, int variant, cudaStream_t s) {
  if (hd != 64 && hd != 128)
    throw Error("flash attention: head_dim " + std::to_string(hd) + " has no tensor-core kernel");
  const FwdVariant& fv = kFwdVariants[variant];
  const FwdLaunch run = hd == 64 ? fv.hd64 : fv.hd128;
  if (!run)
    throw Error(std::string("attention variant '") + fv.name + "' has no head_dim " + std::to_string(hd) +
                " instantiation (the default has)");
  run(q, k, v, cu, T, nh, nkv, tiles, num_tiles, out, lse, s);
}

}  // namespace cuda
}  // namespace l2e
