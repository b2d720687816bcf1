// CUDA emulation build: the GPU's approximate math, within the error its documentation bounds
// (approx_math.cpp). L2E_CUDA_EMULATE_MATH picks the value each function returns:
//   "exact" (the default): the correctly rounded value, so that runs are reproducible and compare with
//            the CPU backend's closely;
//   "worst": that value moved by the documented maximum error, in ulps of that value (next to a power
//            of two, as far as the floats allow within it), up or down as a hash of the argument's bits
//            decides: neighbouring arguments err both ways, so a softmax's normalisation does not cancel
//            the error as it would a one-way bias. The special values stay exact (2^(+-0) = 1). CI runs the op suites under it, so that
//            a test whose bounds leave no room for the GPU's approximations fails here, not on a GPU.
// Any other value makes the emulated device unusable, naming the setting (runtime.cpp setting_error).
// The bounds:
//   ex2.approx.f32  2 ulp from the correctly rounded result over the full range (PTX ISA, "Floating
//                   Point Instructions: ex2");
//   __expf(x)       2 + floor(|1.173 x|) ulp (CUDA C++ Programming Guide, "Mathematical Functions":
//                   intrinsic functions);
//   rsqrtf(x)       2 ulp over the full range (ibid., single-precision standard functions).
#pragma once
#include <string>

namespace l2e {
namespace emu {

// "" or why L2E_CUDA_EMULATE_MATH is not a value this build knows.
const std::string& math_setting_error();

// `exact` (correctly rounded), moved by at most `ulps` of its ulps under "worst" (away from zero or
// toward it by the hash of `arg`; never past the largest finite value or through zero); zeros,
// infinities and NaNs are returned as they are.
float approximate(float exact, float arg, unsigned ulps);

// The functions, as the kernels call them.
float ex2_approx(float a);  // 2^a: no flushing (ptx.cpp adds .ftz's)
float fast_expf(float x);   // __expf
float approx_rsqrtf(float x);  // rsqrtf

}  // namespace emu
}  // namespace l2e
