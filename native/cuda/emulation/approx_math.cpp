// The GPU's approximate math in the emulation build: the bounds and the setting are in approx_math.h.
#include "approx_math.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace l2e {
namespace emu {
namespace {

struct MathMode {
  bool worst = false;
  std::string error;
};
const MathMode& mode() {
  static const MathMode chosen = [] {
    MathMode out;
    const char* v = std::getenv("L2E_CUDA_EMULATE_MATH");
    if (!v || !*v || std::strcmp(v, "exact") == 0) return out;
    if (std::strcmp(v, "worst") == 0) {
      out.worst = true;
      return out;
    }
    out.error = std::string("the CUDA emulation's L2E_CUDA_EMULATE_MATH='") + v + "' is neither 'exact' nor 'worst'";
    return out;
  }();
  return chosen;
}

uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

}  // namespace

const std::string& math_setting_error() { return mode().error; }

float approximate(float exact, float arg, unsigned ulps) {
  if (!mode().worst || ulps == 0 || exact == 0.0f || !std::isfinite(exact)) return exact;
  // Consecutive finite floats of one sign have consecutive encodings: k ulps away is k encodings away.
  const uint32_t mag = bits_of(exact) & 0x7fffffffu, sign = bits_of(exact) & 0x80000000u;
  const uint32_t largest = 0x7f7fffffu;  // FLT_MAX
  const bool away = ((bits_of(arg) * 0x9e3779b1u) >> 31) != 0;  // away from zero, or toward it
  const uint32_t moved = away ? (largest - mag < ulps ? largest : mag + ulps) : (mag < ulps ? 0u : mag - ulps);
  const uint32_t out = moved | sign;
  float r;
  std::memcpy(&r, &out, sizeof r);
  return r;
}

// The correctly rounded values, from double precision (whose error is far below half a float ulp).
float ex2_approx(float a) { return approximate(float(std::exp2(double(a))), a, 2); }

float fast_expf(float x) {
  const float bound = std::floor(std::fabs(1.173f * x));  // |x| <= 104 where exp(x) is finite and not 0
  return approximate(float(std::exp(double(x))), x, 2u + (bound < 1e6f ? unsigned(bound) : 1000000u));
}

float approx_rsqrtf(float x) { return approximate(float(1.0 / std::sqrt(double(x))), x, 2); }

}  // namespace emu
}  // namespace l2e
