// The backward kernels' query pipeline (attention_bwd.cu, attention_bwd_split.cu): a block owning keys
// k0.. of one (sequence, kv head) walks the items (group head, query tile i0 = k0 + kQ t), head-major,
// each loaded by cp.async into one stage of shared memory:
//   Q [kQ][D] and dO [kQ][D] bf16 (swizzled tiles, mma.cuh), then lse [kQ] and D [kQ] fp32,
// rows past the sequence zero-filled without a read.
#pragma once
#include "cuda/mma.cuh"

namespace l2e {
namespace cuda {

template <int D, int kQ>
struct BwdStage {
  static constexpr size_t bytes = size_t(2 * kQ * D) * sizeof(bf16) + 2 * kQ * sizeof(float);
  char* at;  // the stage's first byte
  __device__ bf16* q() const { return reinterpret_cast<bf16*>(at); }
  __device__ bf16* dout() const { return q() + kQ * D; }
  __device__ float* lse() const { return reinterpret_cast<float*>(dout() + kQ * D); }
  __device__ float* dvec() const { return lse() + kQ; }
};

// The block's items and where each one's rows are.
struct BwdItems {
  int k0, base, len, group, kvh, nq, count;  // nq query tiles at or after k0; count = group nq items
  __device__ int head(int it) const { return kvh * group + it / nq; }
  __device__ int first_row(int it, int kQ) const { return k0 + (it % nq) * kQ; }
};

// Issues (does not commit) the copies of item it into stage st, by threads tid of nthreads.
template <int D, int kQ>
__device__ __forceinline__ void issue_bwd_item(const BwdStage<D, kQ>& st, const BwdItems& b, int it, const bf16* q,
                                               const bf16* dout, const float* lse, const float* Dvec, int T, int nh,
                                               int tid, int nthreads) {
  const size_t qs = size_t(nh) * D;
  const int h = b.head(it), i0 = b.first_row(it, kQ);
  cp_tile<D>(st.q(), q + size_t(b.base) * qs + size_t(h) * D, qs, i0, kQ, b.len, tid, nthreads);
  cp_tile<D>(st.dout(), dout + size_t(b.base) * qs + size_t(h) * D, qs, i0, kQ, b.len, tid, nthreads);
  for (int r = tid; r < kQ; r += nthreads) {
    const bool ok = i0 + r < b.len;
    const size_t at = size_t(h) * T + b.base + (ok ? i0 + r : 0);
    cp_async4(st.lse() + r, lse + at, ok ? 4 : 0);
    cp_async4(st.dvec() + r, Dvec + at, ok ? 4 : 0);
  }
}

}  // namespace cuda
}  // namespace l2e
