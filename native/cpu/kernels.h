// CPU reference kernels, templated on the scalar type S: float for the backend, double for the
// finite-difference gradient checks (explicitly instantiated for both in the .cpp files).
// Shapes and meanings are those of the op table (core/backend.h). Threaded with parallel_for.
#pragma once
#include <cstdint>
#include <vector>

#include "core/adamw_scalars.h"

namespace l2e {
namespace cpu {

// ---- forward (ops_forward.cpp, attention.cpp) ----
template <typename S>
void embedding_fwd(const int32_t* ids, int T, const S* table, int H, S* out);
template <typename S>
void rmsnorm_fwd(const S* x, const S* w, int T, int H, float eps, S* y, S* rstd);
// y[T,N] = x[T,K] W[N,K]^T (+ bias); float goes through sgemm.
template <typename S>
void linear_fwd(const S* x, const S* W, const S* bias, int T, int K, int N, S* y);
// The same with W pre-packed (cpu/gemm.h pack_weights_inplace).
void linear_packed_fwd(const float* x, const float* Wp, const float* bias, int T, int K, int N, float* y);
template <typename S>
void rope_fwd(S* x, const int32_t* positions, int T, int heads, int hd, float theta, float sign);
template <typename S>
void attention_fwd(const S* q, const S* k, const S* v, const int32_t* cu_seqlens, int B, int nh,
                   int nkv, int hd, S* out, S* lse);
template <typename S>
void swiglu_fwd(const S* gate, const S* up, int64_t n, S* out);
// The fp32 SwiGLU forward on AVX-512 (swiglu_avx512.cpp), which swiglu_fwd<float> takes at that level.
void swiglu_avx512(const float* gate, const float* up, int64_t n, float* out);
template <typename S>
void pool_fwd(const S* x, const int32_t* cu_seqlens, int B, int P, int mode, S* out);
template <typename S>
void l2norm_fwd(const S* x, int B, int P, bool normalize, S* y, S* norm);

// rotary inverse frequencies exactly as transformers computes them (float32):
// inv_freq[i] = 1 / theta^(float(2i) / hd), i < hd/2.
void rope_inv_freq(int hd, float theta, float* inv_freq);

// ---- backward (ops_backward.cpp, attention_backward.cpp) ----
template <typename S>
void embedding_bwd(const int32_t* ids, int T, const S* dout, int H, S* dtable);  // accumulates
template <typename S>
void rmsnorm_bwd(const S* x, const S* w, const S* rstd, const S* dy, int T, int H, S* dx, S* dw,
                 bool accumulate_dx, bool accumulate_dw);  // false: written, not added to
template <typename S>
void linear_bwd(const S* x, const S* W, const S* dy, int T, int K, int N, S* dx, S* dW, S* dbias,
                bool accumulate_dx, bool accumulate_dw);  // dbias with dW's flag; dx / dbias may be null
template <typename S>
void attention_bwd(const S* q, const S* k, const S* v, const S* out, const S* lse, const S* dout,
                   const int32_t* cu_seqlens, int B, int nh, int nkv, int hd, S* dq, S* dk, S* dv);
template <typename S>
void swiglu_bwd(const S* gate, const S* up, const S* dout, int64_t n, S* dgate, S* dup);
// The fp32 SwiGLU backward on AVX-512 (swiglu_avx512.cpp), which swiglu_bwd<float> takes at that level.
void swiglu_bwd_avx512(const float* gate, const float* up, const float* dout, int64_t n, float* dgate, float* dup);
template <typename S>
void pool_bwd(const S* dout, const int32_t* cu_seqlens, int B, int P, int mode, S* dx);
template <typename S>
void l2norm_bwd(const S* y, const S* norm, const S* dy, int B, int P, bool normalize, S* dx);

// ---- loss and optimizer (loss.cpp, adamw.cpp) ----
template <typename S>
S infonce(const S* q, const S* p, int B, int G, int P, S temperature, bool in_batch, S* scores,
          S* dq, S* dp);
void adamw(float* w, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
           float beta2, float eps, float weight_decay, int step);
// Elements [b, e) of one AdamW step with its scalars (core/adamw_scalars.h), on the calling thread.
void adamw_range(float* w, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamwScalars& k);

// ---- the gradient's norm (grad_norm.cpp) ----
// [begin, end) elements of a flat buffer.
struct Range {
  int64_t begin, end;
};
// Σ a[i]² over [0, n) in double, where a is zero outside `nonzero` (sorted, disjoint ranges): bit for
// bit the sum over every element, for any such ranges.
double sumsq(const float* a, int64_t n, const std::vector<Range>& nonzero);

}  // namespace cpu
}  // namespace l2e
