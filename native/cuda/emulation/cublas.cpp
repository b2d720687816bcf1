// The emulation build's stand-in for cuBLAS: cublasGemmEx implemented from its documented contract
// (cuBLAS Library User Guide, "cublasGemmEx()" and "cublas<t>gemm()"), not from how blas.cpp calls it:
//   C = alpha op(A) op(B) + beta C, all matrices column-major; op(A) is m x k, op(B) is k x n, C is
//   m x n; "op(A) = A if transa == CUBLAS_OP_N, A^T if transa == CUBLAS_OP_T, A^H if transa ==
//   CUBLAS_OP_C" ("cublas<t>gemm()", whose table gives transa as "operation op(A) that is non- or
//   (conj.) transpose"), "and op(B) is defined similarly for matrix B". A is "lda x k with lda >= max(1, m) if
//   transa == CUBLAS_OP_N and lda x m with lda >= max(1, k) otherwise" (likewise B with ldb and k / n),
//   ldc >= max(1, m). Element (i, j) of a column-major matrix with leading dimension ld is at i + j ld.
//   When beta == 0, C need not hold valid values on input (it is not read).
//   cublasOperation_t ("cublasOperation_t"): CUBLAS_OP_N = 0 "the non-transpose operation", CUBLAS_OP_T
//   = 1 "the transpose operation", CUBLAS_OP_C = 2 "the conjugate transpose operation is selected"
//   (CUBLAS_OP_HERMITAN is the same value); the conjugate transpose A^H of a real matrix is its transpose
//   A^T, and every type emulated here is real, so CUBLAS_OP_C computes exactly what CUBLAS_OP_T does.
//   Anything else (CUBLAS_OP_CONJG = 3 included) is CUBLAS_STATUS_INVALID_VALUE: "if transa and transb
//   are not one of CUBLAS_OP_N, CUBLAS_OP_C, CUBLAS_OP_T" (the guide's error table for gemm).
//   Supported here: Atype = Btype = CUDA_R_16BF, Ctype = CUDA_R_16BF or CUDA_R_32F, computeType =
//   CUBLAS_COMPUTE_32F (fp32 accumulation, alpha and beta are host floats); anything else (complex types,
//   whose CUBLAS_OP_C would conjugate, included) is CUBLAS_STATUS_NOT_SUPPORTED, bad sizes
//   CUBLAS_STATUS_INVALID_VALUE, as the guide lists.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "census.h"
#include "cuda/cublas_loader.h"
#include "cuda_bf16.h"
#include "cuda_runtime_api.h"

namespace l2e {
namespace emu {

namespace {

// cublasOperation_t beyond cuda::kOpN / kOpT (cublas_loader.h): CUBLAS_OP_C (= CUBLAS_OP_HERMITAN)
constexpr int kOpC = 2;

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
    return status(kNotSupported, "Atype " + std::to_string(Atype) + ", Btype " + std::to_string(Btype) + ", Ctype " +
                                     std::to_string(Ctype) + ", computeType " + std::to_string(computeType) +
                                     ": the emulated cublasGemmEx implements real types only: A and B CUDA_R_16BF (14), "
                                     "C CUDA_R_16BF or CUDA_R_32F (0), CUBLAS_COMPUTE_32F (68)");
  // op(X) is X^T for CUBLAS_OP_T and X^H = X^T for CUBLAS_OP_C (real types: nothing to conjugate)
  auto valid = [](int op) { return op == cuda::kOpN || op == cuda::kOpT || op == kOpC; };
  if (!valid(transa) || !valid(transb))
    return status(kInvalidValue, "transa " + std::to_string(transa) + ", transb " + std::to_string(transb) +
                                     ": each must be CUBLAS_OP_N (0), CUBLAS_OP_T (1) or CUBLAS_OP_C (2)");
  const bool ta = transa != cuda::kOpN, tb = transb != cuda::kOpN;
  if (m < 0 || n < 0 || k < 0) return status(kInvalidValue, "m, n, k must be >= 0");
  auto max1 = [](int x) { return x > 1 ? x : 1; };
  if (lda < max1(ta ? k : m)) return status(kInvalidValue, "lda < max(1, " + std::string(ta ? "k" : "m") + ")");
  if (ldb < max1(tb ? n : k)) return status(kInvalidValue, "ldb < max(1, " + std::string(tb ? "n" : "k") + ")");
  if (ldc < max1(m)) return status(kInvalidValue, "ldc < max(1, m)");
  if (m == 0 || n == 0) return kSuccess;
  // the operands are read and written by cuBLAS's kernels, on the device: an operand outside device
  // memory faults there (the error comes at the next synchronisation, as a kernel's does), and the
  // call itself, asynchronous, succeeds. Each one's extent: its last element's index + 1.
  const size_t ab = 2, cb = Ctype == cuda::kR32F ? 4 : 2;
  auto extent = [](int rows, int cols, int ld) { return size_t(rows - 1) + size_t(cols - 1) * size_t(ld) + 1; };
  const bool reach =
      (k == 0 || device_operand(A, extent(ta ? k : m, ta ? m : k, lda) * ab, "cublasGemmEx: A")) &&
      (k == 0 || device_operand(B, extent(tb ? n : k, tb ? k : n, ldb) * ab, "cublasGemmEx: B")) &&
      device_operand(C, extent(m, n, ldc) * cb, "cublasGemmEx: C");
  if (!reach) return kSuccess;
  census_library_call("cublasGemmEx", uint64_t(2) * uint64_t(m) * uint64_t(n) * uint64_t(k));
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
