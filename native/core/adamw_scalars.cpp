#include "core/adamw_scalars.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace l2e {

namespace {
double typed_decimal(float f) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf) - 1, f);
  *res.ptr = '\0';
  return std::strtod(buf, nullptr);
}
}  // namespace

AdamwScalars adamw_scalars(float lr_f, float beta1_f, float beta2_f, float eps_f, float weight_decay_f, int step) {
  const double lr = typed_decimal(lr_f), beta1 = typed_decimal(beta1_f), beta2 = typed_decimal(beta2_f);
  const double eps = typed_decimal(eps_f), wd = typed_decimal(weight_decay_f);
  const double bc1 = 1.0 - std::pow(beta1, double(step));
  const double bc2 = 1.0 - std::pow(beta2, double(step));
  AdamwScalars k;
  k.decay = float(1.0 - lr * wd);
  k.lerp_w = float(1.0 - beta1);
  k.lerp_small = std::fabs(k.lerp_w) < 0.5f;
  k.b2 = float(beta2);
  k.one_minus_b2 = float(1.0 - beta2);
  k.bc2_sqrt = float(std::sqrt(bc2));
  k.eps = float(eps);
  k.neg_step = float(-(lr / bc1));
  k.decays = wd != 0.0;
  return k;
}

}  // namespace l2e
