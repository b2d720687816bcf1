// Test hooks for the reduced-precision GEMM (the bench times it as benchOp linear_lowp):
//   lowpLinear(precision, kernel | null, x: Float32Array [T*K], T, W: Float32Array [N*K], N, K,
//              y?: Float32Array [T*N]) -> Float32Array y = x W^T with W converted as a model would
//   (core/lowp.h) and the named micro-kernel ("scalar", "avx2", "avx512", "avx512bf16" (bf16 only),
//   "amx"; null: the one picked).
//   lowpKernels() -> { bf16: string[], int8: string[], picked: { bf16, int8 } } on this CPU.
#include <napi.h>

#include <string>
#include <vector>

#include "addon/registry.h"
#include "core/lowp.h"
#include "cpu/gemm_lowp.h"

namespace l2e {
namespace {

int64_t dim(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber() || info[i].As<Napi::Number>().DoubleValue() < 1 ||
      info[i].As<Napi::Number>().DoubleValue() != double(info[i].As<Napi::Number>().Int64Value()))
    throw Napi::TypeError::New(info.Env(), std::string("lowpLinear: ") + name + " must be a positive integer");
  return info[i].As<Napi::Number>().Int64Value();
}

Napi::Float32Array f32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t n) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string("lowpLinear: ") + name + " must be a Float32Array");
  Napi::Float32Array a = info[i].As<Napi::Float32Array>();
  if (int64_t(a.ElementLength()) != n)
    throw Napi::RangeError::New(info.Env(), std::string("lowpLinear: ") + name + " has " +
                                                std::to_string(a.ElementLength()) + " elements, expected " +
                                                std::to_string(n));
  return a;
}

Napi::Value LowpLinear(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !info[0].IsString())
    throw Napi::TypeError::New(env, "lowpLinear(precision, kernel, x, T, W, N, K, y?)");
  const int64_t T = dim(info, 3, "T"), N = dim(info, 5, "N"), K = dim(info, 6, "K");
  Napi::Float32Array x = f32(info, 2, "x", T * K), w = f32(info, 4, "W", N * K);
  Napi::Float32Array y = info.Length() > 7 && !info[7].IsUndefined() ? f32(info, 7, "y", T * N)
                                                                      : Napi::Float32Array::New(env, size_t(T * N));
  const std::string kernel = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  try {
    const Precision p = parse_precision(info[0].As<Napi::String>().Utf8Value());
    LowpMatrix m;
    const float* wd = w.Data();
    lowp_pack(m, p, LowpMatrix::Layout::Gemm, N, K,
              [&](int64_t n, float* out) { std::copy(wd + n * K, wd + (n + 1) * K, out); });
    lowp::linear_lowp(x.Data(), T, m, y.Data(), kernel.empty() ? nullptr : kernel.c_str());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return y;
}

Napi::Value LowpKernels(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array b = Napi::Array::New(env), q = Napi::Array::New(env);
  for (const char* name : {"scalar", "avx2", "avx512", "avx512bf16", "amx"}) {
    if (lowp::bf16_kernel(name)) b.Set(b.Length(), name);
    if (lowp::int8_kernel(name)) q.Set(q.Length(), name);
  }
  o.Set("bf16", b);
  o.Set("int8", q);
  Napi::Object picked = Napi::Object::New(env);
  picked.Set("bf16", lowp::pick_bf16_kernel().name);
  picked.Set("int8", lowp::pick_int8_kernel().name);
  o.Set("picked", picked);
  return o;
}

void register_lowp(Napi::Env env, Napi::Object exports) {
  exports.Set("lowpLinear", Napi::Function::New(env, LowpLinear));
  exports.Set("lowpKernels", Napi::Function::New(env, LowpKernels));
}

}  // namespace

L2E_REGISTER(lowp, register_lowp);

}  // namespace l2e
