// JS bindings for our sgemm: sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
// (synchronous, writes C in place), gemmKernel() -> "avx512" | "avx2" | "scalar", and
// packWeights(W, N, K, pack) (W[N,K] into / out of the pre-packed layout of cpu/gemm.h, in place),
// sgemmPackedWeights(M, N, K, A, lda, Wp, beta, C, ldc) (C = A Wp^T + beta C), and
// setGemmKernel(name) to force a micro-kernel (tests use it to cover every instruction set).
#include <napi.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "addon/registry.h"
#include "core/tensor.h"
#include "cpu/gemm.h"
#include "cpu/gemm_kernels.h"

namespace {

int64_t dim_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("sgemm: ") + name + " must be a number");
  const double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v != std::floor(v) || v > 9.0e15)
    throw Napi::RangeError::New(info.Env(), std::string("sgemm: ") + name + " must be a non-negative integer");
  return int64_t(v);
}

Napi::Float32Array array_arg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw Napi::TypeError::New(info.Env(), std::string("sgemm: ") + name + " must be a Float32Array");
  return info[i].As<Napi::Float32Array>();
}

// A rows x cols matrix with row stride ld must fit in arr: ld >= cols, (rows-1)*ld + cols <= length.
void check_matrix(Napi::Env env, const char* name, const Napi::Float32Array& arr, int64_t rows,
                  int64_t cols, int64_t ld, const char* ld_name) {
  if (ld < std::max<int64_t>(1, cols))
    throw Napi::RangeError::New(env, std::string("sgemm: ") + ld_name + " = " + std::to_string(ld) +
                                         " is less than the " + std::to_string(cols) + " columns of " + name);
  if (rows == 0 || cols == 0) return;
  const int64_t need = (rows - 1) * ld + cols;
  if (int64_t(arr.ElementLength()) < need)
    throw Napi::RangeError::New(env, std::string("sgemm: ") + name + " has " + std::to_string(arr.ElementLength()) +
                                         " elements but a " + std::to_string(rows) + "x" + std::to_string(cols) +
                                         " matrix with row stride " + std::to_string(ld) + " needs " +
                                         std::to_string(need));
}

Napi::Value Sgemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 13) throw Napi::TypeError::New(env, "sgemm: expected 13 arguments");
  if (!info[0].IsBoolean() || !info[1].IsBoolean())
    throw Napi::TypeError::New(env, "sgemm: transA and transB must be booleans");
  if (!info[5].IsNumber() || !info[10].IsNumber())
    throw Napi::TypeError::New(env, "sgemm: alpha and beta must be numbers");
  const bool transA = info[0].As<Napi::Boolean>().Value(), transB = info[1].As<Napi::Boolean>().Value();
  const int64_t M = dim_arg(info, 2, "M"), N = dim_arg(info, 3, "N"), K = dim_arg(info, 4, "K");
  const float alpha = info[5].As<Napi::Number>().FloatValue(), beta = info[10].As<Napi::Number>().FloatValue();
  Napi::Float32Array A = array_arg(info, 6, "A"), B = array_arg(info, 8, "B"), C = array_arg(info, 11, "C");
  const int64_t lda = dim_arg(info, 7, "lda"), ldb = dim_arg(info, 9, "ldb"), ldc = dim_arg(info, 12, "ldc");
  // Stored shapes: A is [M,K] ([K,M] when transA), B is [K,N] ([N,K] when transB), C is [M,N].
  check_matrix(env, "A", A, transA ? K : M, transA ? M : K, lda, "lda");
  check_matrix(env, "B", B, transB ? N : K, transB ? K : N, ldb, "ldb");
  check_matrix(env, "C", C, M, N, ldc, "ldc");
  try {
    l2e::sgemm(transA, transB, M, N, K, alpha, A.Data(), lda, B.Data(), ldb, beta, C.Data(), ldc);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

Napi::Value PackWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 4 || !info[3].IsBoolean()) throw Napi::TypeError::New(env, "packWeights(W, N, K, pack: boolean)");
  Napi::Float32Array W = array_arg(info, 0, "W");
  const int64_t N = dim_arg(info, 1, "N"), K = dim_arg(info, 2, "K");
  check_matrix(env, "W", W, N, K, std::max<int64_t>(1, K), "K");
  if (int64_t(W.ElementLength()) != N * K) throw Napi::RangeError::New(env, "packWeights: W must hold exactly N x K values");
  if (info[3].As<Napi::Boolean>().Value())
    l2e::pack_weights_inplace(W.Data(), N, K);
  else
    l2e::unpack_weights_inplace(W.Data(), N, K);
  return env.Undefined();
}

Napi::Value SgemmPackedWeights(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 9 || !info[6].IsNumber()) throw Napi::TypeError::New(env, "sgemmPackedWeights(M, N, K, A, lda, Wp, beta, C, ldc)");
  const int64_t M = dim_arg(info, 0, "M"), N = dim_arg(info, 1, "N"), K = dim_arg(info, 2, "K");
  Napi::Float32Array A = array_arg(info, 3, "A"), W = array_arg(info, 5, "Wp"), C = array_arg(info, 7, "C");
  const int64_t lda = dim_arg(info, 4, "lda"), ldc = dim_arg(info, 8, "ldc");
  check_matrix(env, "A", A, M, K, lda, "lda");
  check_matrix(env, "Wp", W, N, K, std::max<int64_t>(1, K), "K");
  check_matrix(env, "C", C, M, N, ldc, "ldc");
  try {
    l2e::sgemm_packed_weights(M, N, K, A.Data(), lda, W.Data(), info[6].As<Napi::Number>().FloatValue(), C.Data(), ldc);
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
  return env.Undefined();
}

Napi::Value GemmKernel(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), l2e::gemm_kernel_name());
}

Napi::Value SetGemmKernel(const Napi::CallbackInfo& info) {
  if (info.Length() != 1 || !info[0].IsString())
    throw Napi::TypeError::New(info.Env(), "setGemmKernel: expected a kernel name (avx512, avx2 or scalar)");
  try {
    l2e::gemm::set_kernel(info[0].As<Napi::String>().Utf8Value().c_str());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

void RegisterGemm(Napi::Env env, Napi::Object exports) {
  exports.Set("sgemm", Napi::Function::New(env, Sgemm, "sgemm"));
  exports.Set("packWeights", Napi::Function::New(env, PackWeights, "packWeights"));
  exports.Set("sgemmPackedWeights", Napi::Function::New(env, SgemmPackedWeights, "sgemmPackedWeights"));
  exports.Set("gemmKernel", Napi::Function::New(env, GemmKernel, "gemmKernel"));
  exports.Set("setGemmKernel", Napi::Function::New(env, SetGemmKernel, "setGemmKernel"));
}

}  // namespace

L2E_REGISTER(gemm, RegisterGemm);
