// cuBLAS GEMMs of the linear layers (see blas.h). Column-major views of row-major buffers:
//   x [T,K] -> [K,T] ld K;  W [N,K] -> [K,N] ld K;  dy [T,N] -> [N,T] ld N;  y [T,N] -> [N,T] ld N.
//   forward  y^T [N,T]  = W^T'[N,K] x^T [K,T]     : op(A) = T on W, op(B) = N on x
//   dx       dx^T [K,T] = W [K,N] dy^T [N,T]      : N, N
//   dW       dW^T [K,N] = x^T [K,T] dy [T,N]      : N on x, T on dy   (beta = 1: accumulate)
// beta = 0 writes C without reading it (cuBLAS: C need not hold valid values then).
#include "cuda/blas.h"

namespace l2e {
namespace cuda {

namespace {
int cuda_type(DType t) {
  if (t == DType::BF16) return kR16BF;
  if (t == DType::F32) return kR32F;
  throw Error(std::string("cuda linear: unsupported output dtype ") + dtype_name(t));
}
}  // namespace

Blas::Blas(cudaStream_t s) {
  const Cublas& c = cublas();
  cublas_check(c.create(&h_), "cublasCreate");
  cublas_check(c.set_stream(h_, s), "cublasSetStream");
}

Blas::~Blas() {
  if (h_) cublas().destroy(h_);
}

void Blas::gemm(int ta, int tb, int m, int n, int k, const void* A, int lda, const void* B, int ldb, float beta,
                void* C, DType ct, int ldc, const char* what) {
  if (m <= 0 || n <= 0) return;
  const float alpha = 1.0f;
  cublas_check(cublas().gemm_ex(h_, ta, tb, m, n, k, &alpha, A, kR16BF, lda, B, kR16BF, ldb, &beta, C, cuda_type(ct),
                                ldc, kCompute32F, kGemmDefault),
               what);
}

void Blas::linear(const void* x, const void* W, int T, int K, int N, void* y, DType yt, float beta) {
  gemm(kOpT, kOpN, N, T, K, W, K, x, K, beta, y, yt, N, "GemmEx (linear)");
}

void Blas::linear_dx(const void* dy, const void* W, int T, int K, int N, void* dx, DType dxt, float beta) {
  gemm(kOpN, kOpN, K, T, N, W, K, dy, N, beta, dx, dxt, K, "GemmEx (linear dx)");
}

void Blas::linear_dw(const void* dy, const void* x, int T, int K, int N, void* dW, DType dwt, float beta) {
  gemm(kOpN, kOpT, K, N, T, x, K, dy, N, beta, dW, dwt, K, "GemmEx (linear dW)");
}

}  // namespace cuda
}  // namespace l2e
