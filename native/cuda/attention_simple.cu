// Causal var-len GQA attention with one thread per (row, head) in fp32: the path for head dims
// without a tensor-core kernel (tiny test models) and a cross-check for the fast path. Same math as
// attention_fwd.cu / attention_bwd.cu (see there); s_ij = scale q_i . k_j, P_ij = exp(s_ij - lse_i).
#include "cuda/attention_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"

namespace l2e {
namespace cuda {

namespace {

constexpr int kMaxHd = 256;

// Sequence containing token t: cu[b] <= t < cu[b+1].
__device__ int seq_of(const int32_t* cu, int B, int t) {
  int lo = 0, hi = B;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (cu[mid] <= t) lo = mid;
    else hi = mid;
  }
  return lo;
}

__device__ float dot(const bf16* a, const bf16* b, int hd) {
  float s = 0.0f;
  for (int c = 0; c < hd; c++) s += to_f(a[c]) * to_f(b[c]);
  return s;
}

// Online softmax over keys start..t of one (token, head).
__global__ void fwd_kernel(const bf16* q, const bf16* k, const bf16* v, const int32_t* cu, int B, int T, int nh,
                           int nkv, int hd, float scale, bf16* out, float* lse) {
  const size_t n = size_t(T) * nh;
  L2E_GRID_STRIDE(i, n) {
    const int t = int(i / size_t(nh)), h = int(i % size_t(nh)), kvh = h / (nh / nkv);
    const int start = cu[seq_of(cu, B, t)];
    const size_t qs = size_t(nh) * hd, ks = size_t(nkv) * hd;
    const bf16* qi = q + size_t(t) * qs + size_t(h) * hd;
    float acc[kMaxHd];
    for (int c = 0; c < hd; c++) acc[c] = 0.0f;
    float m = -INFINITY, l = 0.0f;
    for (int j = start; j <= t; j++) {
      const float s = dot(qi, k + size_t(j) * ks + size_t(kvh) * hd, hd) * scale;
      const float mnew = fmaxf(m, s);
      const float corr = __expf(m - mnew), p = __expf(s - mnew);
      l = l * corr + p;
      const bf16* vj = v + size_t(j) * ks + size_t(kvh) * hd;
      for (int c = 0; c < hd; c++) acc[c] = acc[c] * corr + p * to_f(vj[c]);
      m = mnew;
    }
    bf16* o = out + size_t(t) * qs + size_t(h) * hd;
    for (int c = 0; c < hd; c++) o[c] = from_f<bf16>(acc[c] / l);
    lse[size_t(h) * T + t] = m + logf(l);
  }
}

// dQ_i = scale sum_{j <= i} P_ij (dO_i . v_j - D_i) k_j
__global__ void dq_kernel(const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse,
                          const float* Dvec, const int32_t* cu, int B, int T, int nh, int nkv, int hd, float scale,
                          bf16* dq) {
  const size_t n = size_t(T) * nh;
  L2E_GRID_STRIDE(i, n) {
    const int t = int(i / size_t(nh)), h = int(i % size_t(nh)), kvh = h / (nh / nkv);
    const int start = cu[seq_of(cu, B, t)];
    const size_t qs = size_t(nh) * hd, ks = size_t(nkv) * hd;
    const bf16* qi = q + size_t(t) * qs + size_t(h) * hd;
    const bf16* gi = dout + size_t(t) * qs + size_t(h) * hd;
    const float li = lse[size_t(h) * T + t], Di = Dvec[size_t(h) * T + t];
    float acc[kMaxHd];
    for (int c = 0; c < hd; c++) acc[c] = 0.0f;
    for (int j = start; j <= t; j++) {
      const bf16* kj = k + size_t(j) * ks + size_t(kvh) * hd;
      const float p = __expf(dot(qi, kj, hd) * scale - li);
      const float ds = p * (dot(gi, v + size_t(j) * ks + size_t(kvh) * hd, hd) - Di);
      for (int c = 0; c < hd; c++) acc[c] += ds * to_f(kj[c]);
    }
    bf16* o = dq + size_t(t) * qs + size_t(h) * hd;
    for (int c = 0; c < hd; c++) o[c] = from_f<bf16>(acc[c] * scale);
  }
}

// For key j of kv head g: dV_j = sum_{h in g} sum_{i >= j} P_ij dO_i, dK_j = scale sum dS_ij q_i
__global__ void dkdv_kernel(const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse,
                            const float* Dvec, const int32_t* cu, int B, int T, int nh, int nkv, int hd, float scale,
                            bf16* dk, bf16* dv) {
  const size_t n = size_t(T) * nkv;
  L2E_GRID_STRIDE(i, n) {
    const int j = int(i / size_t(nkv)), g = int(i % size_t(nkv)), group = nh / nkv;
    const int end = cu[seq_of(cu, B, j) + 1];
    const size_t qs = size_t(nh) * hd, ks = size_t(nkv) * hd;
    const bf16* kj = k + size_t(j) * ks + size_t(g) * hd;
    const bf16* vj = v + size_t(j) * ks + size_t(g) * hd;
    float ak[kMaxHd], av[kMaxHd];
    for (int c = 0; c < hd; c++) ak[c] = av[c] = 0.0f;
    for (int h = g * group; h < (g + 1) * group; h++)
      for (int t = j; t < end; t++) {
        const bf16* qi = q + size_t(t) * qs + size_t(h) * hd;
        const bf16* gi = dout + size_t(t) * qs + size_t(h) * hd;
        const float p = __expf(dot(qi, kj, hd) * scale - lse[size_t(h) * T + t]);
        const float ds = p * (dot(gi, vj, hd) - Dvec[size_t(h) * T + t]);
        for (int c = 0; c < hd; c++) {
          av[c] += p * to_f(gi[c]);
          ak[c] += ds * to_f(qi[c]);
        }
      }
    bf16* ok = dk + size_t(j) * ks + size_t(g) * hd;
    bf16* ov = dv + size_t(j) * ks + size_t(g) * hd;
    for (int c = 0; c < hd; c++) {
      ok[c] = from_f<bf16>(ak[c] * scale);
      ov[c] = from_f<bf16>(av[c]);
    }
  }
}

void check_hd(int hd) {
  if (hd > kMaxHd) throw Error("cuda attention: head_dim above 256 is not supported");
}

}  // namespace

void simple_fwd(const void* q, const void* k, const void* v, const int32_t* cu, int B, int T, int nh, int nkv, int hd,
                void* out, float* lse, cudaStream_t s) {
  check_hd(hd);
  const size_t n = size_t(T) * nh;
  L2E_LAUNCH(fwd_kernel, grid_for(n, 128), 128, 0, s)(static_cast<const bf16*>(q), static_cast<const bf16*>(k),
                                               static_cast<const bf16*>(v), cu, B, T, nh, nkv, hd,
                                               1.0f / sqrtf(float(hd)), static_cast<bf16*>(out), lse);
  check_launch("attention_simple_forward");
}

void simple_bwd(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
                const int32_t* cu, int B, int T, int nh, int nkv, int hd, void* dq, void* dk, void* dv,
                cudaStream_t s) {
  check_hd(hd);
  const float scale = 1.0f / sqrtf(float(hd));
  const bf16 *qp = static_cast<const bf16*>(q), *kp = static_cast<const bf16*>(k), *vp = static_cast<const bf16*>(v),
             *gp = static_cast<const bf16*>(dout);
  L2E_LAUNCH(dq_kernel, grid_for(size_t(T) * nh, 128), 128, 0, s)(qp, kp, vp, gp, lse, Dvec, cu, B, T, nh, nkv, hd, scale,
                                                          static_cast<bf16*>(dq));
  check_launch("attention_simple_backward_dq");
  L2E_LAUNCH(dkdv_kernel, grid_for(size_t(T) * nkv, 128), 128, 0, s)(qp, kp, vp, gp, lse, Dvec, cu, B, T, nh, nkv, hd, scale,
                                                             static_cast<bf16*>(dk), static_cast<bf16*>(dv));
  check_launch("attention_simple_backward_dkdv");
}

}  // namespace cuda
}  // namespace l2e
