// Flash-attention forward, causal, var-len, GQA, bf16 tensor cores (mma.sync m16n8k16), hd 64 / 128.
//
// Block = Rows / 16 warps = Rows query rows of one (sequence, head); each warp owns 16 rows. Keys stream
// in tiles of Keys through a Stages-deep cp.async pipeline of K/V stages (swizzled, see mma.cuh); every
// operand fragment is an ldmatrix (Q and K plain, V .trans). Per tile, with raw scores s = q.k and
// c = scale log2 e folded into the one FMA before each exp2:
//   m_new = max(m, max_j s_j),  a = 2^(c (m - m_new)),  l = a l + sum_j 2^(c s_j - c m_new),
//   o = a o + sum_j bf16(2^(c s_j - c m_new)) v_j
// and at the end o /= l, lse = (c m + log2 l) ln 2 (natural log, as the op table defines it).
// Masked scores (key > query, key past the sequence) are -inf; only tiles reaching a warp's diagonal
// (the last ones, keys up to the block's last row) can hold them, so only they are masked, and a warp
// skips a key tile that lies wholly after its 16 rows (and every tile when none of its rows is in the
// sequence). No S x S matrix is formed.
//
// Tile variants (FwdVariant below, chosen by name at run time: kFwdVariants): Rows 64 (4 warps) or 128
// (8 warps), Keys 64 or 128, Stages 2 or 3. The host schedule (Batch::tiles) has 64-row tiles, per
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

template <int HeadDim, int Rows, int Keys, int Stages>
struct FwdShape {
  static_assert(Rows == kAttentionTileRows || Rows == 2 * kAttentionTileRows,
                "a block takes one or two schedule tiles");
  static constexpr int D = HeadDim, kRows = Rows, kKeys = Keys, kStages = Stages, kWarps = Rows / 16;
  static constexpr size_t smem = size_t(Rows + 2 * Stages * Keys) * D * sizeof(bf16);
};

template <class Shape>
__global__ void __launch_bounds__(Shape::kWarps * 32)
    flash_fwd_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                     const int32_t* cu, const int32_t* tiles, int T, int nh, int nkv, float scale_log2,
                     bf16* __restrict__ out, float* __restrict__ lse) {
  constexpr int D = Shape::D, kRows = Shape::kRows, kKeys = Shape::kKeys, S = Shape::kStages, kWarps = Shape::kWarps;
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

  const int r0 = warp * 16;
  uint32_t qf[D / 16][4];  // this warp's 16 query rows as A fragments
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int row[2] = {q0 + r0 + g, q0 + r0 + g + 8};  // this thread's two query rows (sequence-relative)

  for (int i = 0; i < ntiles; i++) {
    cp_async_wait<S - 2>();  // this thread's copies of tile i (and Q) have landed
    __syncthreads();         // everyone's have; everyone is done with tile i - 1's stage
    issue(i + S - 1);
    if (i == 0) {
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) frag_a<D>(qf[kk], sQ, r0, kk * 16, lane);
    }
    const bf16* sK = sKV + (i % S) * 2 * kKeys * D;
    const bf16* sV = sK + kKeys * D;
    const int k0 = i * kKeys;
    // every key after this warp's rows, or no row of the warp in the sequence (warp-uniform)
    if (k0 > q0 + r0 + 15 || q0 + r0 >= len) continue;

    float s[kKeys / 8][4];  // S = Q K^T for 16 rows x kKeys keys
#pragma unroll
    for (int j = 0; j < kKeys / 8; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
#pragma unroll
      for (int j = 0; j < kKeys / 8; j += 2) {
        uint32_t b[4];
        frag_b<D>(b, sK, j * 8, kk * 16, lane);
        mma_bf16(s[j], qf[kk], b[0], b[1]);
        mma_bf16(s[j + 1], qf[kk], b[2], b[3]);
      }
    if (k0 + kKeys - 1 > q0 + r0 || k0 + kKeys > len) {  // reaches the diagonal or the end (warp-uniform)
#pragma unroll
      for (int j = 0; j < kKeys / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int key = k0 + j * 8 + 2 * t4 + (e & 1);
          if (key > row[e >> 1] || key >= len) s[j][e] = -INFINITY;
        }
    }

#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < kKeys / 8; j++) mx = fmaxf(mx, fmaxf(s[j][2 * rr], s[j][2 * rr + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mnew = fmaxf(m[rr], mx);
      const float ref = mnew == -INFINITY ? 0.0f : mnew * scale_log2;  // fully masked row: 0, not NaN
      const float corr = exp2f(fmaf(m[rr], scale_log2, -ref));
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kKeys / 8; j++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
          const float p = exp2f(fmaf(s[j][2 * rr + e], scale_log2, -ref));
          s[j][2 * rr + e] = p;
          sum += p;
        }
      l[rr] = l[rr] * corr + sum;  // per-thread partial; the quad's partials are summed at the end
      m[rr] = mnew;
#pragma unroll
      for (int n = 0; n < D / 8; n++) {
        o[n][2 * rr] *= corr;
        o[n][2 * rr + 1] *= corr;
      }
    }

    // O += P V: P's C tiles (keys 16kk..16kk+15 = n-tiles 2kk, 2kk+1) are the A fragment.
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; kk++) {
      uint32_t a[4];
      c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        uint32_t b[4];
        frag_b_t<D>(b, sV, n * 8, kk * 16, lane);
        mma_bf16(o[n], a, b[0], b[1]);
        mma_bf16(o[n + 1], a, b[2], b[3]);
      }
    }
  }
  cp_async_wait<0>();  // the trailing (empty) groups: leave nothing in flight

  // O / l goes through this warp's own rows of sQ (read only at tile 0) so that the global stores
  // are whole 16-byte chunks of rows.
#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    float lsum = l[rr];
    lsum += __shfl_xor_sync(0xffffffffu, lsum, 1);
    lsum += __shfl_xor_sync(0xffffffffu, lsum, 2);
    const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;  // 0: a row past the sequence (not stored)
#pragma unroll
    for (int n = 0; n < D / 8; n++)
      *reinterpret_cast<uint32_t*>(sQ + swz<D>(r0 + g + 8 * rr, n * 8 + 2 * t4)) =
          pack_bf16(o[n][2 * rr] * inv, o[n][2 * rr + 1] * inv);
    if (t4 == 0 && row[rr] < len) lse[size_t(h) * T + base + row[rr]] = (m[rr] * scale_log2 + log2f(lsum)) * kLn2;
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

template <int D, int Rows, int Keys, int Stages>
void launch(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles,
            int num_tiles, void* out, float* lse, cudaStream_t s) {
  using Shape = FwdShape<D, Rows, Keys, Stages>;
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
  const char* name;  // q<Rows>w<warps>k<Keys>s<Stages>
  FwdLaunch hd64;    // nullptr: not instantiated at this head dim
  FwdLaunch hd128;
};
// [0] is the default (the shapes used unless a variant is named); the rest hd 128 only. At hd 128 the
// default is q128w8k64s2, the fastest shape that fits every sm_80+ GPU's shared memory (96 KiB; sm_86 and
// sm_89 allow 99): on an H200 (bench/results/2026-11-30-NVIDIA-H200-profile.txt) it ran 221.6 / 248.2
// TFLOP/s at S = 2048 / 8192 against 185.1 / 200.6 for q64w4k64s2, the earlier default; q128w8k64s3
// (128 KiB) was within 1% of it. In a sweep, "default" and its named shape differ by the run-to-run noise.
constexpr FwdVariant kFwdVariants[] = {
    {"default", launch<64, 64, 64, 3>, launch<128, 128, 64, 2>},
    {"q64w4k64s2", nullptr, launch<128, 64, 64, 2>},
    {"q64w4k64s3", nullptr, launch<128, 64, 64, 3>},
    {"q128w8k64s2", nullptr, launch<128, 128, 64, 2>},
    {"q128w8k64s3", nullptr, launch<128, 128, 64, 3>},
    {"q64w4k128s2", nullptr, launch<128, 64, 128, 2>},
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
