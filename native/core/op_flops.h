// FLOPs of an op-table call, for the per-op timers (cpu/op_timing.h, cuda/op_events.cpp), so that a
// timing table shows each op's rate beside its time. The matrix products only, 2 m n k each; the
// memory-bound ops count 0, and so does the loss's small score products (infonce).
//   linear               2 T K N
//   linear_lowp          2 T K N, K and N of the held matrix
//   linear_backward      2 T K N for dW, as much again for dx when it is asked for
//   attention            2 products (Q K^T, P V) of 2 hd FLOPs a (query, key) pair, per query head,
//                        over Batch::causal_pairs (len^2 / 2 a sequence: FlashAttention's convention,
//                        the one the bench's attention rows and the reference stack use)
//   attention_backward   5 products (S, dP, dV, dK, dQ)
// Every other op takes the template below (0). A product op's overload must keep its op's parameter
// list (core/ops.def); test/gpu/op-events.test.ts and test/bench-runner.test.ts check the counts.
#pragma once
#include "core/backend.h"
#include "core/lowp.h"

namespace l2e {
namespace op_flops {

#define L2E_OP(name, ret, params, args) \
  template <typename... A>              \
  double name(const A&...) {            \
    return 0;                           \
  }
#include "core/ops.def"

inline double linear(const Buf&, const Buf&, const Buf*, int T, int K, int N, Buf&) { return 2.0 * T * K * N; }
inline double linear_lowp(const Buf&, const LowpMatrix& W, const Buf*, int T, Buf&) { return 2.0 * T * double(W.K) * double(W.N); }
inline double linear_backward(const Buf&, const Buf&, const Buf&, int T, int K, int N, Buf* dx, Buf&, Buf*, bool, bool) {
  return (dx ? 4.0 : 2.0) * T * K * N;
}
inline double attention(const Buf&, const Buf&, const Buf&, const Batch& batch, int nh, int, int hd, Buf&, Buf&) {
  return 2.0 * 2.0 * hd * nh * batch.causal_pairs;
}
inline double attention_backward(const Buf&, const Buf&, const Buf&, const Buf&, const Buf&, const Buf&, const Batch& batch,
                                 int nh, int, int hd, Buf&, Buf&, Buf&) {
  return 5.0 * 2.0 * hd * nh * batch.causal_pairs;
}

}  // namespace op_flops
}  // namespace l2e
