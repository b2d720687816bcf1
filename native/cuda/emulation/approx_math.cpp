// The GPU's approximate math in the emulation build: the bounds and the setting are in approx_math.h.
#include "approx_math.h"

#include <algorithm>
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
  // "ulp error": the distance from the correctly rounded result in units of that result's last place
  int e;
  std::frexp(exact, &e);  // |exact| in [2^(e-1), 2^e): its ulp is 2^(e-24), 2^-149 among the subnormals
  const double ulp = std::ldexp(1.0, std::max(e - 24, -149));
  const bool away = ((bits_of(arg) * 0x9e3779b1u) >> 31) != 0;  // away from zero, or toward it
  const double bound = double(ulps) * ulp;
  const double moved = double(exact) + (away == (exact > 0.0f) ? bound : -bound);
  float r = float(moved);
  // past a power of two the floats are twice as far apart: a value rounded beyond the bound steps back
  if (std::fabs(double(r) - double(exact)) > bound || !std::isfinite(r)) r = std::nextafter(r, exact);
  if (std::signbit(r) != std::signbit(exact)) r = std::copysign(0.0f, exact);  // never through zero
  return r;
}

// The correctly rounded values, from double precision (whose error is far below half a float ulp).
// The special values the ISA lists are exact: 2^(+-0) = 1 (and exp(+-0) = 1, as expf's special cases).
float ex2_approx(float a) { return a == 0.0f ? 1.0f : approximate(float(std::exp2(double(a))), a, 2); }

float fast_expf(float x) {
  if (x == 0.0f) return 1.0f;
  const float bound = std::floor(std::fabs(1.173f * x));  // |x| <= 104 where exp(x) is finite and not 0
  return approximate(float(std::exp(double(x))), x, 2u + (bound < 1e6f ? unsigned(bound) : 1000000u));
}

float approx_rsqrtf(float x) { return approximate(float(1.0 / std::sqrt(double(x))), x, 2); }

}  // namespace emu
}  // namespace l2e
