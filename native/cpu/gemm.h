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

// Weights pre-packed for inference: W[N,K] (nn.Linear's row-major layout) rearranged in place so
// that each whole block of kPackedRows = 32 rows is stored k-major, element (n, k) of block
// s = n / 32 at W[s*32*K + k*32 + n%32]; a last block of N % 32 rows stays row-major. The packed
// GEMM then reads op(B) straight from the weights instead of packing 4 bytes per weight each call.
constexpr int64_t kPackedRows = 32;
void pack_weights_inplace(float* W, int64_t N, int64_t K);
void unpack_weights_inplace(float* W, int64_t N, int64_t K);
// C[M,N] = A[M,K] W[N,K]^T + beta C with W pre-packed (pack_weights_inplace); lda/ldc row strides.
void sgemm_packed_weights(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* Wp,
                          float beta, float* C, int64_t ldc);

// How far ahead, in bytes, the weight-streaming GEMM kernels ask for the weights into L2 (prefetcht1)
// when a short x sweeps them once, in order: the pre-packed sgemm's stream micro-kernel
// (gemm_avx512.cpp) and the AMX stream kernels of the bf16 / int8 GEMM (gemm_amx.cpp). At T = 20 on the
// 600M shapes, 16 and 32 KB did equally well; 2-8 KB did not reach the stream rate.
constexpr int64_t kStreamAheadBytes = 32 * 1024;

// "avx512", "avx2" or "scalar": the micro-kernel sgemm uses on this CPU (that of cpu/isa.h's active_isa(), which L2E_CPU_ISA sets).
const char* gemm_kernel_name();

}  // namespace l2e
