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
// Python scalars are doubles while our hyper-parameters arrive as float, and double(0.9f) != 0.9.
// The scalar math therefore runs on the shortest decimal that round-trips each float (0.9f -> 0.9),
// which is the number the user typed. No multiply-add may be fused except the one ATen's lerp fuses.
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "cpu/kernels.h"
#include "cpu/parallel.h"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace l2e {
namespace cpu {

namespace {

// The double a Python user would have passed for this float: its shortest round-trip decimal.
double typed_decimal(float f) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf) - 1, f);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}

}  // namespace

void adamw(float* w, const float* g, float* m, float* v, int64_t n, float lr_f, float beta1_f, float beta2_f,
           float eps_f, float weight_decay_f, int step) {
  const double lr = typed_decimal(lr_f), beta1 = typed_decimal(beta1_f), beta2 = typed_decimal(beta2_f);
  const double eps = typed_decimal(eps_f), wd = typed_decimal(weight_decay_f);
  const double bc1 = 1.0 - std::pow(beta1, double(step));
  const double bc2 = 1.0 - std::pow(beta2, double(step));
  const float decay = float(1.0 - lr * wd);
  const float lerp_w = float(1.0 - beta1);  // ATen lerp: small weight -> start + w (end - start)
  const bool lerp_small = std::fabs(lerp_w) < 0.5f;
  const float b2 = float(beta2), one_minus_b2 = float(1.0 - beta2);
  const float bc2_sqrt = float(std::sqrt(bc2));
  const float eps32 = float(eps);
  const float neg_step = float(-(lr / bc1));
  const bool decays = wd != 0.0;

  parallel_for(n, [&](int64_t b, int64_t e, int) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
    for (int64_t i = b; i < e; i++) {
      float wi = w[i];
      const float gi = g[i];
      if (decays) wi = wi * decay;
      float mi = m[i];
      const float diff = gi - mi;
      mi = lerp_small ? std::fma(lerp_w, diff, mi) : std::fma(lerp_w - 1.0f, diff, gi);
      float vi = v[i] * b2;
      const float gg = one_minus_b2 * gi;
      vi = vi + gg * gi;
      const float denom = std::sqrt(vi) / bc2_sqrt + eps32;
      const float num = neg_step * mi;
      wi = wi + num / denom;
      w[i] = wi;
      m[i] = mi;
      v[i] = vi;
    }
  }, 16384);
}

}  // namespace cpu
}  // namespace l2e
