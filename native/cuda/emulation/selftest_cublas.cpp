// Self-checks of the emulated cublasGemmEx (cublas.cpp), run by cudaEmulationSelfTest
// (selftest_binding.cpp; test/gpu/emulation.test.ts):
//   cublas_op_c  CUBLAS_OP_C ("the conjugate transpose operation") on A, on B and on both gives, bit for
//                bit, what CUBLAS_OP_T gives on the same inputs (every emulated type is real: A^H = A^T),
//                for C in bf16 and fp32, with beta 0 (C not read: NaN on input) and beta != 0; and what the
//                guide calls invalid stays refused: an operation other than N, T, C (CUBLAS_OP_CONJG = 3,
//                -1) and lda < max(1, k) under CUBLAS_OP_C ("otherwise") are CUBLAS_STATUS_INVALID_VALUE;
//                a complex type (CUDA_C_16BF) under CUBLAS_OP_C is CUBLAS_STATUS_NOT_SUPPORTED.
//   cublas_host_operand  (in a child process: it leaves the device failed) an operand in pageable host
//                memory (B here): cuBLAS's kernels fault on it on a GPU, so the call, asynchronous,
//                succeeds and the next synchronisation reports cudaErrorIllegalAddress naming it;
//                C is left unwritten (it was computed from host memory before).
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/cublas_loader.h"
#include "cuda_bf16.h"
#include "cuda_runtime.h"

namespace l2e {
namespace emu {

cuda::Cublas emulated_cublas();  // cublas.cpp

namespace {

constexpr int kN = 0, kT = 1, kC = 2, kConjg = 3;  // cublasOperation_t: CUBLAS_OP_N, _T, _C, _CONJG
constexpr int kInvalidValue = 7, kNotSupported = 15;
constexpr int kC16BF = 15;  // cudaDataType CUDA_C_16BF ("complex as a pair of nv_bfloat16 numbers")

// op(A) m x k, op(B) k x n, C m x n; the leading dimensions with padding, so that rows and columns
// taken the wrong way round read other elements: A is lda x k (N, lda >= m) or lda x m (T, C, lda >= k)
constexpr int m = 5, n = 3, k = 7, ldaN = 6, ldaT = 9, ldbN = 8, ldbT = 4, ldc = 6;
constexpr int kAElems = ldaT * m > ldaN * k ? ldaT * m : ldaN * k;
constexpr int kBElems = ldbN * n > ldbT * k ? ldbN * n : ldbT * k;

std::string op_name(int op) { return op == kN ? "N" : op == kT ? "T" : op == kC ? "C" : std::to_string(op); }

// element e of a C read back as bytes (fp32 when ctype is CUDA_R_32F, else bf16)
float element(const std::vector<unsigned char>& c, int ctype, size_t e) {
  if (ctype == cuda::kR32F) {
    float f;
    std::memcpy(&f, &c[4 * e], 4);
    return f;
  }
  __nv_bfloat16 q;
  std::memcpy(&q.__x, &c[2 * e], 2);
  return __bfloat162float(q);
}

void to_device(void* dst, const void* src, size_t bytes) {
  cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, nullptr);
  cudaStreamSynchronize(nullptr);
}
void to_host(void* dst, const void* src, size_t bytes) {
  cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, nullptr);
  cudaStreamSynchronize(nullptr);
}

std::string cublas_op_c() {
  const cuda::Cublas blas = emulated_cublas();
  cuda::cublasHandle_t h = nullptr;
  if (blas.create(&h) != 0) return "cublasCreate failed";
  // bf16 values with 8 significant bits, so that products and sums round (the order of the sum shows)
  std::vector<uint16_t> ha(kAElems), hb(kBElems);
  uint32_t x = 12345;
  auto next = [&x]() {
    x = x * 1664525u + 1013904223u;
    return float(int(x >> 16) % 2001 - 1000) / 337.0f;
  };
  for (uint16_t& v : ha) v = __float2bfloat16_rn(next()).__x;
  for (uint16_t& v : hb) v = __float2bfloat16_rn(next()).__x;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  cudaMalloc(&a, sizeof(uint16_t) * kAElems);
  cudaMalloc(&b, sizeof(uint16_t) * kBElems);
  cudaMalloc(&c, sizeof(float) * ldc * n);
  to_device(a, ha.data(), sizeof(uint16_t) * kAElems);
  to_device(b, hb.data(), sizeof(uint16_t) * kBElems);
  const float alpha = 1.25f;
  std::string r;
  // C's bytes after one call from the same input C: NaN bits where beta == 0 (not read), small values else
  auto gemm = [&](int ta, int tb, int ctype, float beta, std::vector<unsigned char>& out) {
    const size_t bytes = (ctype == cuda::kR32F ? 4 : 2) * size_t(ldc) * n;
    std::vector<unsigned char> in(bytes);
    for (size_t e = 0; e < bytes; e++) in[e] = beta == 0.0f ? 0xff : (unsigned char)(0x3f - e % 3);
    to_device(c, in.data(), bytes);
    const int lda = ta == kN ? ldaN : ldaT, ldb = tb == kN ? ldbN : ldbT;
    const int s = blas.gemm_ex(h, ta, tb, m, n, k, &alpha, a, cuda::kR16BF, lda, b, cuda::kR16BF, ldb, &beta, c, ctype, ldc,
                               cuda::kCompute32F, cuda::kGemmDefault);
    out.assign(bytes, 0);
    to_host(out.data(), c, bytes);
    return s;
  };
  const int ops[3][2] = {{kC, kN}, {kN, kC}, {kC, kC}};
  for (int ctype : {int(cuda::kR16BF), int(cuda::kR32F)})
    for (float beta : {0.0f, -0.5f})
      for (const auto& op : ops) {
        if (!r.empty()) break;
        const int ta = op[0], tb = op[1];
        const int tat = ta == kC ? kT : ta, tbt = tb == kC ? kT : tb;  // the same with T for C
        std::vector<unsigned char> got, want;
        const std::string what = "transa " + op_name(ta) + ", transb " + op_name(tb) + ", C " +
                                 (ctype == cuda::kR32F ? "fp32" : "bf16") + ", beta " + (beta == 0.0f ? "0" : "-0.5");
        const int sw = gemm(tat, tbt, ctype, beta, want);
        if (sw != 0) r = "with CUBLAS_OP_T for CUBLAS_OP_C (" + what + "): " + blas.status_string(sw);
        const int sg = r.empty() ? gemm(ta, tb, ctype, beta, got) : 0;
        if (r.empty() && sg != 0) r = what + ": " + blas.status_string(sg);
        if (r.empty() && got != want) r = what + ": C differs from CUBLAS_OP_T's";
        // every element of the m x n block written (beta 0: no NaN input left), the padding rows untouched
        for (int j = 0; j < n && r.empty(); j++)
          for (int i = 0; i < ldc && r.empty(); i++) {
            const size_t e = size_t(i) + size_t(j) * ldc;
            if (beta == 0.0f && (i < m) == std::isnan(element(got, ctype, e)))
              r = what + ": C(" + std::to_string(i) + ", " + std::to_string(j) + ") " +
                  (i < m ? "not written" : "written outside the m x n block");
          }
      }
  // what stays refused
  const float beta = 0.0f;
  auto call = [&](int ta, int tb, int lda, int type) {
    return blas.gemm_ex(h, ta, tb, m, n, k, &alpha, a, type, lda, b, type, tb == kN ? ldbN : ldbT, &beta, c,
                        type == kC16BF ? kC16BF : int(cuda::kR32F), ldc, cuda::kCompute32F, cuda::kGemmDefault);
  };
  struct Refusal {
    int ta, tb, lda, type, want;
    const char* what;
  };
  const Refusal refusals[] = {
      {kConjg, kN, ldaT, cuda::kR16BF, kInvalidValue, "transa CUBLAS_OP_CONJG (3)"},
      {kN, -1, ldaN, cuda::kR16BF, kInvalidValue, "transb -1"},
      {kC, kN, ldaN, cuda::kR16BF, kInvalidValue, "transa CUBLAS_OP_C with lda 6 < max(1, k) = 7"},
      {kC, kC, ldaT, kC16BF, kNotSupported, "CUBLAS_OP_C on CUDA_C_16BF (complex)"},
  };
  for (const Refusal& f : refusals) {
    if (!r.empty()) break;
    const int s = call(f.ta, f.tb, f.lda, f.type);
    if (s != f.want) r = std::string(f.what) + ": status " + std::to_string(s) + " (" + blas.status_string(s) + "), not " + std::to_string(f.want);
  }
  blas.destroy(h);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return r.empty() ? "ok" : r;
}

// the synchronisation's error after a gemm whose B is a host vector: its message, or what went otherwise
std::string cublas_host_operand() {
  const cuda::Cublas blas = emulated_cublas();
  cuda::cublasHandle_t h = nullptr;
  if (blas.create(&h) != 0) return "cublasCreate failed";
  std::vector<uint16_t> host(kBElems, __float2bfloat16_rn(1.0f).__x), ha(kAElems, __float2bfloat16_rn(1.0f).__x);
  std::vector<float> nan(size_t(ldc) * n, std::nanf(""));
  void *a = nullptr, *c = nullptr;
  cudaMalloc(&a, sizeof(uint16_t) * kAElems);
  cudaMalloc(&c, sizeof(float) * ldc * n);
  to_device(a, ha.data(), sizeof(uint16_t) * kAElems);
  to_device(c, nan.data(), sizeof(float) * ldc * n);
  const float alpha = 1.0f, beta = 0.0f;
  const int s = blas.gemm_ex(h, kN, kN, m, n, k, &alpha, a, cuda::kR16BF, ldaN, host.data(), cuda::kR16BF, ldbN, &beta, c,
                             cuda::kR32F, ldc, cuda::kCompute32F, cuda::kGemmDefault);
  std::string r = s != 0 ? std::string("the call returned ") + blas.status_string(s) + ", not success (it is asynchronous)" : "";
  const cudaError_t e = cudaStreamSynchronize(nullptr);
  if (r.empty()) r = e == cudaErrorIllegalAddress ? cudaGetErrorString(e) : "the synchronisation returned " + std::to_string(int(e)) + ", not cudaErrorIllegalAddress";
  blas.destroy(h);
  return r;
}

}  // namespace

// "" when `name` is none of these self-checks; else "ok" or what failed.
std::string cublas_selftest(const std::string& name) {
  if (name == "cublas_op_c") return cublas_op_c();
  if (name == "cublas_host_operand") return cublas_host_operand();
  return "";
}

}  // namespace emu
}  // namespace l2e
