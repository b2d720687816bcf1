// Row-major linear-layer GEMMs on cuBLAS (column-major): bf16 inputs, fp32 accumulation, C in bf16
// or fp32. A row-major [R, C] matrix is a column-major [C, R] one, so every product is computed as
// its transpose:  row-major Y = X W^T  <=>  column-major Y^T = W X^T  (see blas.cpp).
#pragma once
#include <cuda_runtime_api.h>

#include "core/tensor.h"
#include "cuda/cublas_loader.h"

namespace l2e {
namespace cuda {

class Blas {
 public:
  explicit Blas(cudaStream_t s);
  ~Blas();
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;

  // y[T,N] = x[T,K] W[N,K]^T + beta y
  void linear(const void* x, const void* W, int T, int K, int N, void* y, DType yt, float beta);
  // dx[T,K] = dy[T,N] W[N,K] + beta dx
  void linear_dx(const void* dy, const void* W, int T, int K, int N, void* dx, DType dxt, float beta);
  // dW[N,K] = dy[T,N]^T x[T,K] + beta dW
  void linear_dw(const void* dy, const void* x, int T, int K, int N, void* dW, DType dwt, float beta);

 private:
  void gemm(int ta, int tb, int m, int n, int k, const void* A, int lda, const void* B, int ldb, float beta, void* C,
            DType ct, int ldc, const char* what);
  cublasHandle_t h_ = nullptr;
};

}  // namespace cuda
}  // namespace l2e
