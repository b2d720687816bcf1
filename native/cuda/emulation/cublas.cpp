// The emulation build's stand-in for cuBLAS: cublasGemmEx implemented from its documented contract
// (cuBLAS Library User Guide, "cublasGemmEx()" and "cublas<t>gemm()"), not from how blas.cpp calls it:
//   C = alpha op(A) op(B) + beta C, all matrices column-major; op(A) is m x k, op(B) is k x n, C is
//   m x n; op(X) = X for CUBLAS_OP_N, X^T for CUBLAS_OP_T. A is lda x k with lda >= max(1, m) when
//   transa = N, lda x m with lda >= max(1, k) when T (likewise B with ldb and k / n), ldc >= max(1, m).
//   Element (i, j) of a column-major matrix with leading dimension ld is at i + j ld.
//   When beta == 0, C need not hold valid values on input (it is not read).
//   Supported here: Atype = Btype = CUDA_R_16BF, Ctype = CUDA_R_16BF or CUDA_R_32F, computeType =
//   CUBLAS_COMPUTE_32F (fp32 accumulation, alpha and beta are host floats); anything else is
//   CUBLAS_STATUS_NOT_SUPPORTED, bad sizes CUBLAS_STATUS_INVALID_VALUE, as the guide lists.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/cublas_loader.h"
#include "cuda_bf16.h"
#include "cuda_runtime_api.h"

namespace l2e {
namespace emu {

namespace {

enum : int {
  kSuccess = 0,
  kNotInitialized = 1,
  kInvalidValue = 7,
  kExecutionFailed = 13,  // CUBLAS_STATUS_EXECUTION_FAILED: "The GPU program failed to execute"
  kNotSupported = 15,
};

thread_local std::string tl_detail;

int status(int s, const std::string& detail) {
  tl_detail = detail;
  return s;
}

float load(const void* p, int type, size_t i) {
  if (type == cuda::kR32F) return static_cast<const float*>(p)[i];
  __nv_bfloat16 h;
  h.__x = static_cast<const uint16_t*>(p)[i];
  return __bfloat162float(h);
}

int create(cuda::cublasHandle_t* h) {
  *h = new int(1);
  return kSuccess;
}
int destroy(cuda::cublasHandle_t h) {
  if (!h) return kNotInitialized;
  delete static_cast<int*>(h);
  return kSuccess;
}
int set_stream(cuda::cublasHandle_t h, cudaStream_t) { return h ? kSuccess : kNotInitialized; }

int gemm_ex(cuda::cublasHandle_t h, int transa, int transb, int m, int n, int k, const void* alpha, const void* A,
            int Atype, int lda, const void* B, int Btype, int ldb, const void* beta, void* C, int Ctype, int ldc,
            int computeType, int /*algo*/) {
  if (!h) return status(kNotInitialized, "handle not initialised");
  if (sticky_error() != cudaSuccess)  // a kernel failed earlier: the device runs nothing more
    return status(kExecutionFailed, std::string("the device failed earlier: ") + cudaGetErrorString(sticky_error()));
  if (Atype != cuda::kR16BF || Btype != cuda::kR16BF || (Ctype != cuda::kR16BF && Ctype != cuda::kR32F) ||
      computeType != cuda::kCompute32F)
    return status(kNotSupported, "type combination not supported by the emulated cublasGemmEx");
  const bool ta = transa == cuda::kOpT, tb = transb == cuda::kOpT;
  if ((transa != cuda::kOpN && !ta) || (transb != cuda::kOpN && !tb)) return status(kInvalidValue, "transa/transb");
  if (m < 0 || n < 0 || k < 0) return status(kInvalidValue, "m, n, k must be >= 0");
  auto max1 = [](int x) { return x > 1 ? x : 1; };
  if (lda < max1(ta ? k : m)) return status(kInvalidValue, "lda < max(1, " + std::string(ta ? "k" : "m") + ")");
  if (ldb < max1(tb ? n : k)) return status(kInvalidValue, "ldb < max(1, " + std::string(tb ? "n" : "k") + ")");
  if (ldc < max1(m)) return status(kInvalidValue, "ldc < max(1, m)");
  if (m == 0 || n == 0) return kSuccess;
  const float a = *static_cast<const float*>(alpha), b = *static_cast<const float*>(beta);
  // op(A) as rows of k (opA[i][l]) and op(B) as columns of k (opB[j][l]), so the inner loop is contiguous.
  std::vector<float> opA(size_t(m) * k), opB(size_t(n) * k);
  for (int i = 0; i < m; i++)
    for (int l = 0; l < k; l++)
      opA[size_t(i) * k + l] = load(A, Atype, ta ? size_t(l) + size_t(i) * lda : size_t(i) + size_t(l) * lda);
  for (int j = 0; j < n; j++)
    for (int l = 0; l < k; l++)
      opB[size_t(j) * k + l] = load(B, Btype, tb ? size_t(j) + size_t(l) * ldb : size_t(l) + size_t(j) * ldb);
  for (int j = 0; j < n; j++) {
    const float* bj = &opB[size_t(j) * k];
    for (int i = 0; i < m; i++) {
      const float* ai = &opA[size_t(i) * k];
      float part[8] = {0, 0, 0, 0, 0, 0, 0, 0};  // fp32 accumulation in 8 interleaved partial sums
      int l = 0;
      for (; l + 8 <= k; l += 8)
        for (int u = 0; u < 8; u++) part[u] += ai[l + u] * bj[l + u];
      float acc = 0.0f;
      for (; l < k; l++) acc += ai[l] * bj[l];
      for (int u = 0; u < 8; u++) acc += part[u];
      const size_t ci = size_t(i) + size_t(j) * ldc;
      float r = a * acc;
      if (b != 0.0f) r += b * load(C, Ctype, ci);
      if (Ctype == cuda::kR32F) static_cast<float*>(C)[ci] = r;
      else static_cast<uint16_t*>(C)[ci] = __float2bfloat16_rn(r).__x;
    }
  }
  return kSuccess;
}

const char* status_string(int s) {
  static thread_local std::string text;
  const char* name = s == kSuccess ? "CUBLAS_STATUS_SUCCESS"
                     : s == kNotInitialized ? "CUBLAS_STATUS_NOT_INITIALIZED"
                     : s == kInvalidValue ? "CUBLAS_STATUS_INVALID_VALUE"
                     : s == kNotSupported ? "CUBLAS_STATUS_NOT_SUPPORTED"
                                          : "CUBLAS_STATUS_UNKNOWN";
  text = std::string(name) + (tl_detail.empty() ? "" : " (" + tl_detail + ")");
  return text.c_str();
}

}  // namespace

cuda::Cublas emulated_cublas() {
  cuda::Cublas c;
  c.create = create;
  c.destroy = destroy;
  c.set_stream = set_stream;
  c.gemm_ex = gemm_ex;
  c.status_string = status_string;
  c.path = "emulated cuBLAS (CPU)";
  return c;
}

}  // namespace emu
}  // namespace l2e
