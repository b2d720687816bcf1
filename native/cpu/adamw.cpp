// AdamW exactly as torch.optim.AdamW's single-tensor path (foreach=False, fused=False) computes it on
// fp32 tensors, operation by operation, so that our weights match PyTorch's to the last bit:
//
//   param.mul_(1 - lr*wd)                      w = w * f32(1 - lr*wd)          (skipped when wd == 0)
//   exp_avg.lerp_(grad, 1 - beta1)             m = fma(f32(1-b1), g - m, m)    (ATen's lerp, weight < 0.5)
//   exp_avg_sq.mul_(beta2)                     v = v * f32(b2)
//        .addcmul_(grad, grad, value=1-b2)     v = v + (f32(1-b2) * g) * g
//   bc1 = 1 - b1**t, bc2 = 1 - b2**t, step_size = lr / bc1, bc2_sqrt = sqrt(bc2)   (Python doubles)
//   denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)              denom = sqrt(v) / f32(bc2_sqrt) + f32(eps)
//   param.addcdiv_(exp_avg, denom, value=-step_size)              w = w + (f32(-step_size) * m) / denom
//
// The scalars (Python doubles rounded to float32) come from core/adamw_scalars.cpp, shared with the
// CUDA backend. No multiply-add may be fused except the one ATen's lerp fuses.
#include <immintrin.h>

#include <cmath>

#include "core/adamw_scalars.h"

#include "cpu/isa.h"
#include "cpu/kernels.h"
#include "cpu/parallel.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace l2e {
namespace cpu {

namespace {


// One element, in PyTorch's order. Only the lerp is fused (std::fma), like ATen's lerp.
inline void adamw_one(float& w, float g, float& m, float& v, const AdamwScalars& k) {
  float wi = w;
  if (k.decays) wi = wi * k.decay;
  const float diff = g - m;
  const float mi = k.lerp_small ? std::fma(k.lerp_w, diff, m) : std::fma(k.lerp_w - 1.0f, diff, g);
  float vi = v * k.b2;
  const float gg = k.one_minus_b2 * g;
  vi = vi + gg * g;
  const float denom = std::sqrt(vi) / k.bc2_sqrt + k.eps;
  const float num = k.neg_step * mi;
  w = wi + num / denom;
  m = mi;
  v = vi;
}

void adamw_scalar(float* w, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamwScalars& k) {
  for (int64_t i = b; i < e; i++) adamw_one(w[i], g[i], m[i], v[i], k);
}

// The same operations on 8 lanes: IEEE mul/add/sub/div/sqrt are correctly rounded per lane and the
// one FMA is the lerp's, so every lane equals adamw_one bit for bit (test/gradcheck.test.ts checks
// the result against a float32 replay of PyTorch).
// Without decay, 8 elements whose gradients are 0 (of either sign) and whose moments are +0 (a
// parameter that has had no gradient yet: most rows of an embedding table) are left untouched, as the
// update leaves them: m = fma(c, g - 0, 0) or fma(c', g - 0, g) = +0, v = 0 b2 + (c'' g) g = +0, and
// w + (-step +0) / eps = w + -0 = w, bit for bit. Their w is then neither read nor written.
__attribute__((target("avx2,fma"))) void adamw_avx2(float* w, const float* g, float* m, float* v, int64_t b,
                                                   int64_t e, const AdamwScalars& k) {
  const __m256 decay = _mm256_set1_ps(k.decay), lerp_w = _mm256_set1_ps(k.lerp_small ? k.lerp_w : k.lerp_w - 1.0f);
  const __m256 b2 = _mm256_set1_ps(k.b2), omb2 = _mm256_set1_ps(k.one_minus_b2);
  const __m256 bc2s = _mm256_set1_ps(k.bc2_sqrt), eps = _mm256_set1_ps(k.eps), neg_step = _mm256_set1_ps(k.neg_step);
  int64_t i = b;
  for (; i + 8 <= e; i += 8) {
    const __m256 gi = _mm256_loadu_ps(g + i);
    __m256 mi = _mm256_loadu_ps(m + i);
    __m256 vi = _mm256_loadu_ps(v + i);
    if (!k.decays) {
      const __m256i mv = _mm256_or_si256(_mm256_castps_si256(mi), _mm256_castps_si256(vi));
      if (_mm256_testz_si256(mv, mv) && _mm256_movemask_ps(_mm256_cmp_ps(gi, _mm256_setzero_ps(), _CMP_NEQ_UQ)) == 0)
        continue;
    }
    __m256 wi = _mm256_loadu_ps(w + i);
    if (k.decays) wi = _mm256_mul_ps(wi, decay);
    const __m256 diff = _mm256_sub_ps(gi, mi);
    mi = _mm256_fmadd_ps(lerp_w, diff, k.lerp_small ? mi : gi);
    vi = _mm256_add_ps(_mm256_mul_ps(vi, b2), _mm256_mul_ps(_mm256_mul_ps(omb2, gi), gi));
    const __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc2s), eps);
    wi = _mm256_add_ps(wi, _mm256_div_ps(_mm256_mul_ps(neg_step, mi), denom));
    _mm256_storeu_ps(w + i, wi);
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
  }
  adamw_scalar(w, g, m, v, i, e, k);
}

}  // namespace

void adamw_range(float* w, const float* g, float* m, float* v, int64_t b, int64_t e, const AdamwScalars& k) {
  if (isa_allows(Isa::avx2)) adamw_avx2(w, g, m, v, b, e, k);
  else adamw_scalar(w, g, m, v, b, e, k);
}

void adamw(float* w, const float* g, float* m, float* v, int64_t n, float lr_f, float beta1_f, float beta2_f,
           float eps_f, float weight_decay_f, int step) {
  const AdamwScalars k = adamw_scalars(lr_f, beta1_f, beta2_f, eps_f, weight_decay_f, step);
  parallel_for(n, [&](int64_t b, int64_t e, int) { adamw_range(w, g, m, v, b, e, k); }, 16384);
}

}  // namespace cpu
}  // namespace l2e
