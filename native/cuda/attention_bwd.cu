// Flash-attention backward, causal, var-len, GQA, bf16 tensor cores, hd 64 / 128. P is recomputed
// from the saved lse, never stored:
//   s_ij = scale q_i . k_j (j <= i)     P_ij = exp(s_ij - lse_i)     o_i = sum_j P_ij v_j
//   dP_ij = dO_i . v_j                  D_i = dO_i . o_i  (= sum_j P_ij dP_ij, precomputed)
//   dS_ij = P_ij (dP_ij - D_i)          (softmax Jacobian)
//   dV_j = sum_i P_ij dO_i     dK_j = scale sum_i dS_ij q_i     dQ_i = scale sum_j dS_ij k_j
// GQA: a kv head serves nh/nkv query heads, so its dK, dV sum over them.
// Two kernels, both without atomics (deterministic):
//   dkdv: block = 64 keys of one (sequence, kv head), warp = 16 keys; it walks the group's query heads
//         and the query tiles at or after its keys, holding S^T = K Q^T, dP^T = V dO^T in registers
//         and accumulating dV += P^T dO, dK += dS^T Q.
//   dq:   block = 64 queries of one (sequence, head), like the forward; walks the key tiles up to the
//         diagonal and accumulates dQ += dS K.
// That recomputes S and dP once more than a single fused kernel would (7 GEMMs instead of 5) in
// exchange for no fp32 atomics and no dQ workspace.
#include "core/backend.h"
#include "cuda/attention_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/mma.cuh"

namespace l2e {
namespace cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kBlockRows = 64;  // keys per dkdv block, queries per dq block (16 per warp): one schedule tile
static_assert(kBlockRows == kAttentionTileRows, "the flash backward takes one schedule tile per block");
constexpr int kTile = 64;       // keys per tile in the dq kernel
constexpr float kLog2e = 1.4426950408889634f;

template <int D>
struct DkdvShape {
  static constexpr int kQ = D == 128 ? 32 : 64;  // query rows per tile (register budget at hd 128)
  static constexpr int LD = D + 8;
  static constexpr size_t smem = size_t(2 * kBlockRows + 2 * kQ) * LD * sizeof(bf16) + 2 * kQ * sizeof(float);
};

template <int D>
__global__ void __launch_bounds__(kWarps * 32)
    flash_bwd_dkdv_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                          const bf16* __restrict__ dout, const float* __restrict__ lse,
                          const float* __restrict__ Dvec, const int32_t* cu, const int32_t* tiles, int T, int nh,
                          int nkv, float scale_log2, float scale, bf16* __restrict__ dk, bf16* __restrict__ dv) {
  constexpr int kQ = DkdvShape<D>::kQ, LD = DkdvShape<D>::LD;
  L2E_DYNAMIC_SHARED(uint4, smem_raw);
  bf16* sK = reinterpret_cast<bf16*>(smem_raw);  // [64][LD]
  bf16* sV = sK + kBlockRows * LD;               // [64][LD]
  bf16* sQ = sV + kBlockRows * LD;               // [kQ][LD]
  bf16* sdO = sQ + kQ * LD;                      // [kQ][LD]
  float* sLse = reinterpret_cast<float*>(sdO + kQ * LD);  // [kQ] lse * log2 e
  float* sD = sLse + kQ;                                   // [kQ]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int kvh = blockIdx.y, group = nh / nkv;
  const int seq = tiles[2 * blockIdx.x], k0 = tiles[2 * blockIdx.x + 1];
  const int base = cu[seq], len = cu[seq + 1] - base;
  const size_t qs = size_t(nh) * D, ks = size_t(nkv) * D;
  load_tile<D>(sK, LD, k + size_t(base) * ks + size_t(kvh) * D, ks, k0, kBlockRows, len, tid, kWarps * 32);
  load_tile<D>(sV, LD, v + size_t(base) * ks + size_t(kvh) * D, ks, k0, kBlockRows, len, tid, kWarps * 32);

  float dK[D / 8][4], dV[D / 8][4];  // this warp's 16 keys x D
#pragma unroll
  for (int n = 0; n < D / 8; n++)
#pragma unroll
    for (int e = 0; e < 4; e++) dK[n][e] = dV[n][e] = 0.0f;
  const int key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};

  for (int h = kvh * group; h < (kvh + 1) * group; h++) {
    const bf16* qh = q + size_t(base) * qs + size_t(h) * D;
    const bf16* doh = dout + size_t(base) * qs + size_t(h) * D;
    const float* lse_h = lse + size_t(h) * T + base;
    const float* D_h = Dvec + size_t(h) * T + base;
    for (int i0 = k0; i0 < len; i0 += kQ) {  // queries before k0 see none of these keys
      __syncthreads();
      load_tile<D>(sQ, LD, qh, qs, i0, kQ, len, tid, kWarps * 32);
      load_tile<D>(sdO, LD, doh, qs, i0, kQ, len, tid, kWarps * 32);
      for (int r = tid; r < kQ; r += kWarps * 32) {
        const bool ok = i0 + r < len;
        sLse[r] = ok ? lse_h[i0 + r] * kLog2e : INFINITY;  // +inf: P = 0 for rows past the sequence
        sD[r] = ok ? D_h[i0 + r] : 0.0f;
      }
      __syncthreads();

      float st[kQ / 8][4], dpt[kQ / 8][4];  // S^T and dP^T: 16 keys x kQ queries
#pragma unroll
      for (int j = 0; j < kQ / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) st[j][e] = dpt[j][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < D / 16; kk++) {
        uint32_t ak[4], av[4];
        load_a(ak, sK, LD, warp * 16, kk * 16, lane);
        load_a(av, sV, LD, warp * 16, kk * 16, lane);
#pragma unroll
        for (int j = 0; j < kQ / 8; j++) {
          uint32_t b0, b1;
          load_b_nk(b0, b1, sQ, LD, j * 8, kk * 16, lane);
          mma_bf16(st[j], ak, b0, b1);
          load_b_nk(b0, b1, sdO, LD, j * 8, kk * 16, lane);
          mma_bf16(dpt[j], av, b0, b1);
        }
      }
      // st <- P^T, dpt <- dS^T (C layout: row = key[e >> 1], column = query j*8 + 2 t4 + (e & 1))
#pragma unroll
      for (int j = 0; j < kQ / 8; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int r = j * 8 + 2 * t4 + (e & 1), qi = i0 + r, kj = key[e >> 1];
          const float p = (kj <= qi && kj < len) ? exp2f(st[j][e] * scale_log2 - sLse[r]) : 0.0f;
          st[j][e] = p;
          dpt[j][e] = p * (dpt[j][e] - sD[r]);
        }
      // dV += P^T dO, dK += dS^T Q: the C tiles of queries 16kq.. are A fragments (see mma.cuh)
#pragma unroll
      for (int kq = 0; kq < kQ / 16; kq++) {
        uint32_t ap[4], as[4];
        ap[0] = pack_bf16(st[2 * kq][0], st[2 * kq][1]);
        ap[1] = pack_bf16(st[2 * kq][2], st[2 * kq][3]);
        ap[2] = pack_bf16(st[2 * kq + 1][0], st[2 * kq + 1][1]);
        ap[3] = pack_bf16(st[2 * kq + 1][2], st[2 * kq + 1][3]);
        as[0] = pack_bf16(dpt[2 * kq][0], dpt[2 * kq][1]);
        as[1] = pack_bf16(dpt[2 * kq][2], dpt[2 * kq][3]);
        as[2] = pack_bf16(dpt[2 * kq + 1][0], dpt[2 * kq + 1][1]);
        as[3] = pack_bf16(dpt[2 * kq + 1][2], dpt[2 * kq + 1][3]);
#pragma unroll
        for (int n = 0; n < D / 8; n += 2) {
          uint32_t b[4];
          load_b_kn_x2(b, sdO, LD, kq * 16, n * 8, lane);
          mma_bf16(dV[n], ap, b[0], b[1]);
          mma_bf16(dV[n + 1], ap, b[2], b[3]);
          load_b_kn_x2(b, sQ, LD, kq * 16, n * 8, lane);
          mma_bf16(dK[n], as, b[0], b[1]);
          mma_bf16(dK[n + 1], as, b[2], b[3]);
        }
      }
    }
  }

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

template <int D>
__global__ void __launch_bounds__(kWarps * 32)
    flash_bwd_dq_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                        const bf16* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ Dvec,
                        const int32_t* cu, const int32_t* tiles, int T, int nh, int nkv, float scale_log2,
                        float scale, bf16* __restrict__ dq) {
  constexpr int LD = D + 8;
  L2E_DYNAMIC_SHARED(uint4, smem_raw);
  bf16* sQ = reinterpret_cast<bf16*>(smem_raw);  // [64][LD]
  bf16* sdO = sQ + kBlockRows * LD;              // [64][LD]
  bf16* sK = sdO + kBlockRows * LD;              // [kTile][LD]
  bf16* sV = sK + kTile * LD;                    // [kTile][LD]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const int h = blockIdx.y, kvh = h / (nh / nkv);
  const int seq = tiles[2 * blockIdx.x], q0 = tiles[2 * blockIdx.x + 1];
  const int base = cu[seq], len = cu[seq + 1] - base;
  const size_t qs = size_t(nh) * D, ks = size_t(nkv) * D;
  load_tile<D>(sQ, LD, q + size_t(base) * qs + size_t(h) * D, qs, q0, kBlockRows, len, tid, kWarps * 32);
  load_tile<D>(sdO, LD, dout + size_t(base) * qs + size_t(h) * D, qs, q0, kBlockRows, len, tid, kWarps * 32);
  const bf16* kh = k + size_t(base) * ks + size_t(kvh) * D;
  const bf16* vh = v + size_t(base) * ks + size_t(kvh) * D;

  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  float lse2[2], Dr[2];
#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    const bool ok = row[rr] < len;
    lse2[rr] = ok ? lse[size_t(h) * T + base + row[rr]] * kLog2e : INFINITY;
    Dr[rr] = ok ? Dvec[size_t(h) * T + base + row[rr]] : 0.0f;
  }
  float acc[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;

  const int kend = min(len, q0 + kBlockRows);
  for (int k0 = 0; k0 < kend; k0 += kTile) {
    __syncthreads();
    load_tile<D>(sK, LD, kh, ks, k0, kTile, len, tid, kWarps * 32);
    load_tile<D>(sV, LD, vh, ks, k0, kTile, len, tid, kWarps * 32);
    __syncthreads();
    float s[kTile / 8][4], dp[kTile / 8][4];  // S = Q K^T, dP = dO V^T: 16 queries x 64 keys
#pragma unroll
    for (int j = 0; j < kTile / 8; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) s[j][e] = dp[j][e] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++) {
      uint32_t aq[4], ao[4];
      load_a(aq, sQ, LD, warp * 16, kk * 16, lane);
      load_a(ao, sdO, LD, warp * 16, kk * 16, lane);
#pragma unroll
      for (int j = 0; j < kTile / 8; j++) {
        uint32_t b0, b1;
        load_b_nk(b0, b1, sK, LD, j * 8, kk * 16, lane);
        mma_bf16(s[j], aq, b0, b1);
        load_b_nk(b0, b1, sV, LD, j * 8, kk * 16, lane);
        mma_bf16(dp[j], ao, b0, b1);
      }
    }
    // s <- dS = P (dP - D)   (C layout: row = row[e >> 1], key = k0 + j*8 + 2 t4 + (e & 1))
#pragma unroll
    for (int j = 0; j < kTile / 8; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int kj = k0 + j * 8 + 2 * t4 + (e & 1), rr = e >> 1;
        const float p = (kj <= row[rr] && kj < len) ? exp2f(s[j][e] * scale_log2 - lse2[rr]) : 0.0f;
        s[j][e] = p * (dp[j][e] - Dr[rr]);
      }
    // dQ += dS K: B[k = key][n = d] = K tile stored [key][d]
#pragma unroll
    for (int kk = 0; kk < kTile / 16; kk++) {
      uint32_t a[4];
      a[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
      a[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
      a[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      a[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        uint32_t b[4];
        load_b_kn_x2(b, sK, LD, kk * 16, n * 8, lane);
        mma_bf16(acc[n], a, b[0], b[1]);
        mma_bf16(acc[n + 1], a, b[2], b[3]);
      }
    }
  }

#pragma unroll
  for (int rr = 0; rr < 2; rr++) {
    if (row[rr] >= len) continue;
    bf16* dqr = dq + size_t(base + row[rr]) * qs + size_t(h) * D;
#pragma unroll
    for (int n = 0; n < D / 8; n++)
      *reinterpret_cast<uint32_t*>(dqr + n * 8 + 2 * t4) = pack_bf16(acc[n][2 * rr] * scale, acc[n][2 * rr + 1] * scale);
  }
}

template <int D>
void launch(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
            const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles, int num_tiles, void* dq, void* dk, void* dv,
            cudaStream_t s) {
  if (num_tiles == 0) return;
  const size_t smem_kv = DkdvShape<D>::smem;
  const size_t smem_q = size_t(2 * kBlockRows + 2 * kTile) * (D + 8) * sizeof(bf16);
  static bool attr_set = false;
  if (!attr_set) {
    L2E_CUDA_CHECK(
        cudaFuncSetAttribute(flash_bwd_dkdv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_kv)));
    L2E_CUDA_CHECK(
        cudaFuncSetAttribute(flash_bwd_dq_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_q)));
    attr_set = true;
  }
  const float scale = 1.0f / sqrtf(float(D)), scale_log2 = scale * kLog2e;
  const bf16 *qp = static_cast<const bf16*>(q), *kp = static_cast<const bf16*>(k), *vp = static_cast<const bf16*>(v),
             *dop = static_cast<const bf16*>(dout);
  L2E_LAUNCH(flash_bwd_dkdv_kernel<D>, dim3(unsigned(num_tiles), unsigned(nkv)), kWarps * 32, smem_kv, s)(
      qp, kp, vp, dop, lse, Dvec, cu, tiles, T, nh, nkv, scale_log2, scale, static_cast<bf16*>(dk), static_cast<bf16*>(dv));
  check_launch("flash_attention_backward_dkdv");
  L2E_LAUNCH(flash_bwd_dq_kernel<D>, dim3(unsigned(num_tiles), unsigned(nh)), kWarps * 32, smem_q, s)(
      qp, kp, vp, dop, lse, Dvec, cu, tiles, T, nh, nkv, scale_log2, scale, static_cast<bf16*>(dq));
  check_launch("flash_attention_backward_dq");
}

}  // namespace

void flash_bwd(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
               const int32_t* cu, int T, int nh, int nkv, int hd, const int32_t* tiles, int num_tiles, void* dq,
               void* dk, void* dv, cudaStream_t s) {
  if (hd == 64) launch<64>(q, k, v, dout, lse, Dvec, cu, T, nh, nkv, tiles, num_tiles, dq, dk, dv, s);
  else if (hd == 128) launch<128>(q, k, v, dout, lse, Dvec, cu, T, nh, nkv, tiles, num_tiles, dq, dk, dv, s);
  else throw Error("flash attention backward: head_dim " + std::to_string(hd) + " has no tensor-core kernel");
}

}  // namespace cuda
}  // namespace l2e
