// Our own single-precision GEMM (row-major), with a SIMD micro-kernel chosen at run time
// (AVX-512, AVX2+FMA, or portable scalar) and both cores used.
#pragma once
#include <cstdint>

namespace l2e {

// C[M,N] = alpha * op(A) op(B) + beta * C, where op(A) is [M,K] (A is [K,M] when transA) and
// op(B) is [K,N] (B is [N,K] when transB); lda/ldb/ldc are row strides in elements.
// beta == 0 means C is write-only (its old contents may be NaN).
void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// "avx512", "avx2" or "scalar": the micro-kernel sgemm uses on this CPU (that of cpu/isa.h's active_isa(), which L2E_CPU_ISA sets).
const char* gemm_kernel_name();

}  // namespace l2e
