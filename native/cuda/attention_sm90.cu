// Flash-attention forward for Hopper (sm_90a): causal, var-len, GQA, hd 64 / 128, bf16 in, fp32
// softmax statistics; the same math and outputs (out, lse) as the sm_80 forward (attention_fwd.cu),
// whose header gives the online-softmax recurrence. Building blocks: sm90.cuh.
//
// Block = one schedule tile (64 query rows of one sequence) x one head, 160 threads, warp-specialised:
//   warps 0-3  (one warpgroup, the consumer): per key tile j, S = Q K_j^T by wgmma (A = Q and B = K_j
//              from shared memory, K-major, 128-byte swizzle; m64n64k16, D/16 k-steps), the online
//              softmax on S's accumulator registers (row = 16 warp + lane/4 (+8), as mma.sync's C), then
//              O += P V_j by wgmma with P from registers (the accumulator layout of S is exactly the A
//              fragment layout once packed to bf16) and V_j N-major from shared memory (m64n{D}k16,
//              4 k-steps), S_{j+1} overlapping P_j V_j (see the loop); then it releases the stage
//              (mbarrier "empty", 128 arrivals).
//   warp 4     (the producer, one elected lane): TMA loads of Q (once) and of K_j, V_j into a 2-stage
//              ring, each completing on its own mbarrier ("full_k", "full_v"), so that S = Q K_j^T
//              starts before V_j has landed and tile j+1 loads while tile j computes.
// Tiles in shared memory: 64 rows x D bf16 as D/64 swizzle-atom columns of 8 KiB, written by TMA with
// the 128-byte swizzle (3D tensor maps over [T, heads, D]: box {64, 1, 64}). Rows past the sequence
// belong to the next sequence (or are zero past T): their scores are masked to -inf and their
// probabilities are exactly 0 (the sm_80 kernel zero-fills those rows instead; here V's rows there
// are the next sequence's finite values, and 0 v = 0); query rows past the sequence are not written.
// The causal mask is applied only to tiles that cross the diagonal or the sequence end.
#include "core/backend.h"
#include "cuda/attention_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/mma.cuh"
#include "cuda/sm90.cuh"

namespace l2e {
namespace cuda {

namespace {

constexpr int kRows = 64;
static_assert(kRows == kAttentionTileRows, "one schedule tile per block");
constexpr int kKeys = 64;
constexpr int kConsumers = 128;  // one warpgroup
constexpr int kThreads = kConsumers + 32;
constexpr float kLog2e = 1.4426950408889634f;
// maybe_unused: the sm_80-sm_90 images of this file compile its kernel to nothing (sm_90a only)
[[maybe_unused]] constexpr uint32_t kAtom = 64 * 128;  // one swizzle-atom column of a 64-row tile: 8 KiB

template <int D>
constexpr uint32_t tile_bytes() { return uint32_t(kRows) * D * 2; }
// Q, 2 x K, 2 x V, 7 mbarriers, and slack to align the tiles to 1024 bytes
template <int D>
constexpr size_t smem_bytes() { return 5 * size_t(tile_bytes<D>()) + 64 + 1024; }

__global__ void sm90_probe_kernel(int* flag) {
#ifdef L2E_SM90A_DEVICE
  *flag = 1;
#else
  *flag = 0;
#endif
}

// cuTensorMapEncodeTiled: the emulation's, or the driver's through the runtime (no libcuda link)
using EncodeTiled = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                 const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
EncodeTiled encode_tiled() {
#ifdef L2E_CUDA_EMULATION
  return &cuTensorMapEncodeTiled;
#else
  static EncodeTiled fn = [] {
    void* p = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess)
      p = nullptr;
    return reinterpret_cast<EncodeTiled>(p);
  }();
  return fn;
#endif
}

}  // namespace

namespace sm90 {
namespace {
// [T, heads, D] rows of `elem` bytes as a 3D tensor map: boxes of box_cols columns (128 bytes) x 1 head x
// box_rows rows, 128-byte swizzle.
CUtensorMap rows_map(void* p, CUtensorMapDataType type, int elem, int T, int heads, int D, int box_cols, int box_rows) {
  CUtensorMap m;
  const cuuint64_t dim[3] = {cuuint64_t(D), cuuint64_t(heads), cuuint64_t(T)};
  const cuuint64_t stride[2] = {cuuint64_t(D) * elem, cuuint64_t(heads) * D * elem};
  const cuuint32_t box[3] = {cuuint32_t(box_cols), 1, cuuint32_t(box_rows)}, es[3] = {1, 1, 1};
  const EncodeTiled enc = encode_tiled();
  if (!enc) throw Error("attention (sm90): cuTensorMapEncodeTiled is not available from the CUDA driver");
  const CUresult r = enc(&m, type, 3, p, dim, stride, box, es, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                         CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw Error("attention (sm90): cuTensorMapEncodeTiled failed (error " + std::to_string(int(r)) + ")");
  return m;
}
}  // namespace
CUtensorMap tensor_map(const void* p, int T, int heads, int D, int box_rows) {
  return rows_map(const_cast<void*>(p), CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, T, heads, D, 64, box_rows);
}
CUtensorMap tensor_map_f32(float* p, int T, int heads, int D, int box_rows) {
  return rows_map(p, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, 4, T, heads, D, 32, box_rows);
}
}  // namespace sm90

namespace {

template <int D>
__global__ void __launch_bounds__(kThreads)
    flash_fwd_sm90_kernel(const __grid_constant__ CUtensorMap tq, const __grid_constant__ CUtensorMap tk,
                          const __grid_constant__ CUtensorMap tv, const int32_t* cu, const int32_t* tiles, int T, int nh,
                          int nkv, float scale_log2, bf16* __restrict__ out, float* __restrict__ lse) {
#ifdef L2E_SM90A_DEVICE
  using namespace sm90;
  constexpr uint32_t kTile = tile_bytes<D>();
  L2E_DYNAMIC_SHARED(uint4, smem_raw);
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t sQ = (raw + 1023u) & ~1023u;
  auto sK = [&](int s) { return sQ + kTile * uint32_t(1 + s); };
  auto sV = [&](int s) { return sQ + kTile * uint32_t(3 + s); };
  const uint32_t bars = sQ + 5 * kTile;
  const uint32_t bar_q = bars;
  auto full_k = [&](int s) { return bars + 8 + 8 * uint32_t(s); };
  auto full_v = [&](int s) { return bars + 24 + 8 * uint32_t(s); };
  auto empty = [&](int s) { return bars + 40 + 8 * uint32_t(s); };

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int h = blockIdx.y, kvh = h / (nh / nkv);
  const int seq = tiles[2 * blockIdx.x], q0 = tiles[2 * blockIdx.x + 1];
  const int base = cu[seq], len = cu[seq + 1] - base;
  const int kend = min(len, q0 + kRows);  // causal: keys up to the block's last query
  const int ntiles = (kend + kKeys - 1) / kKeys;

  if (tid == 0) {
    bar_init(bar_q, 1);
    for (int s = 0; s < 2; s++) {
      bar_init(full_k(s), 1);
      bar_init(full_v(s), 1);
      bar_init(empty(s), kConsumers);
    }
    bar_init_fence();
  }
  __syncthreads();

  if (warp == kConsumers / 32) {  // ---- producer ----
    if (lane == 0) {
      bar_arrive_expect_tx(bar_q, kTile);
      for (int c = 0; c < D / 64; c++) tma_load_3d(sQ + c * kAtom, &tq, bar_q, c * 64, h, base + q0);
      for (int j = 0; j < ntiles; j++) {
        const int s = j & 1;
        if (j >= 2) bar_wait(empty(s), uint32_t((j >> 1) - 1) & 1u);  // tile j-2 released the stage
        bar_arrive_expect_tx(full_k(s), kTile);
        for (int c = 0; c < D / 64; c++) tma_load_3d(sK(s) + c * kAtom, &tk, full_k(s), c * 64, kvh, base + j * kKeys);
        bar_arrive_expect_tx(full_v(s), kTile);
        for (int c = 0; c < D / 64; c++) tma_load_3d(sV(s) + c * kAtom, &tv, full_v(s), c * 64, kvh, base + j * kKeys);
      }
    }
    return;
  }

  // ---- consumer warpgroup ----
  // Pipelined as in FlashAttention-3 (intra-warpgroup overlap): S_j = Q K_j^T is issued together with
  // O += P_{j-1} V_{j-1}; the softmax statistics of S_j are computed while P_{j-1} V_{j-1} still runs,
  // and only the rescaling of O (and the packing of P_j, whose registers that product reads) waits for it.
  const int g = lane >> 2, t4 = lane & 3;
  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};  // this thread's rows (sequence-relative)
  float o[D / 2];  // O accumulator: register 4n + i = row g + 8 [i >= 2], column 8n + 2 t4 + (i & 1)
#pragma unroll
  for (int i = 0; i < D / 2; i++) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f}, corr[2];
  float sc[32];        // S = Q K^T, 64 x 64: register 4c + i = key 8c + 2 t4 + (i & 1)
  uint32_t pa[4][4];   // P as wgmma A fragments: keys 16kk..16kk+15 are S's column groups 2kk, 2kk+1
  auto issue_qk = [&](int s) {
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      const uint32_t koff = uint32_t(kk / 4) * kAtom + uint32_t(kk % 4) * 32;
      wgmma_ss_n64(sc, desc_sw128(sQ + koff, 16, 1024), desc_sw128(sK(s) + koff, 16, 1024), kk > 0);
    }
  };
  auto pack_p = [&] {
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
      for (int r = 0; r < 4; r++) pa[kk][r] = pack_bf16(sc[8 * kk + 2 * r], sc[8 * kk + 2 * r + 1]);
  };

  bar_wait(bar_q, 0);
  bar_wait(full_k(0), 0);
  fence_operands(sc);
  wgmma_fence();
  issue_qk(0);
  wgmma_commit();
  wgmma_wait<0>();
  fence_operands(sc);
  softmax_tile<kKeys>(sc, 0, len, q0, row, t4, scale_log2, m, l, corr);  // O is still 0: nothing to rescale
  pack_p();

  auto issue_pv = [&](int sp) {
#pragma unroll
    for (int kk = 0; kk < 4; kk++) wgmma_rs_nt(o, pa[kk], desc_sw128(sV(sp) + uint32_t(kk) * 16 * 128, kAtom, 1024), 1);
  };
  // Steady state: no branch between the asynchronous products and their waits (ptxas needs that to
  // keep S_j and P_{j-1} V_{j-1} in flight together; with one, it serialises them, C7514).
  for (int j = 1; j < ntiles; j++) {
    const int sp = (j - 1) & 1;  // the stage of tile j-1, whose P V is due now
    bar_wait(full_k(j & 1), uint32_t(j >> 1) & 1u);
    bar_wait(full_v(sp), uint32_t((j - 1) >> 1) & 1u);
    fence_operands(sc);
    fence_operands(o);
    wgmma_fence();
    issue_qk(j & 1);
    wgmma_commit();
    issue_pv(sp);
    wgmma_commit();
    wgmma_wait<1>();  // S_j has landed; P_{j-1} V_{j-1} may still run
    fence_operands(sc);
    softmax_tile<kKeys>(sc, j * kKeys, len, q0, row, t4, scale_log2, m, l, corr);
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
    const int sp = (ntiles - 1) & 1;
    bar_wait(full_v(sp), uint32_t((ntiles - 1) >> 1) & 1u);
    fence_operands(o);
    wgmma_fence();
    issue_pv(sp);
    wgmma_commit();
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

template <int D>
void launch(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles,
            int num_tiles, void* out, float* lse, cudaStream_t s) {
  if (num_tiles == 0) return;
  const size_t smem = smem_bytes<D>();
  static bool attr_set = false;
  if (!attr_set) {
    L2E_CUDA_CHECK(cudaFuncSetAttribute(flash_fwd_sm90_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    attr_set = true;
  }
  const CUtensorMap tq = sm90::tensor_map(q, T, nh, D, kRows), tk = sm90::tensor_map(k, T, nkv, D, kKeys),
                    tv = sm90::tensor_map(v, T, nkv, D, kKeys);
  const float scale_log2 = kLog2e / sqrtf(float(D));
  const dim3 grid(static_cast<unsigned>(num_tiles), static_cast<unsigned>(nh));
  L2E_LAUNCH(flash_fwd_sm90_kernel<D>, grid, kThreads, smem, s)(tq, tk, tv, cu, tiles, T, nh, nkv, scale_log2,
                                                                static_cast<bf16*>(out), lse);
  check_launch("flash_attention_forward_sm90");
}

}  // namespace

bool sm90_fwd_available() {
  static const bool available = [] {
    int dev = 0;
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, dev) != cudaSuccess || prop.major != 9 || prop.minor != 0) {
      cudaGetLastError();
      return false;
    }
    // the sm_90a image must be the one loaded (the kernel's body exists only there)
    int* flag = nullptr;
    int host = 0;
    if (cudaMalloc(reinterpret_cast<void**>(&flag), sizeof(int)) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    L2E_LAUNCH(sm90_probe_kernel, 1, 1, 0, nullptr)(flag);
    const bool ok = cudaGetLastError() == cudaSuccess &&
                    cudaMemcpyAsync(&host, flag, sizeof(int), cudaMemcpyDeviceToHost, nullptr) == cudaSuccess &&
                    cudaStreamSynchronize(nullptr) == cudaSuccess;
    cudaFree(flag);
    cudaGetLastError();
    return ok && host == 1;
  }();
  return available;
}

void flash_fwd_sm90(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv, int hd,
                    const int32_t* tiles, int num_tiles, void* out, float* lse, cudaStream_t s) {
  if (hd == 64) launch<64>(q, k, v, cu, T, nh, nkv, tiles, num_tiles, out, lse, s);
  else if (hd == 128) launch<128>(q, k, v, cu, T, nh, nkv, tiles, num_tiles, out, lse, s);
  else throw Error("flash attention (sm90): head_dim " + std::to_string(hd) + " has no wgmma kernel");
}

}  // namespace cuda
}  // namespace l2e
