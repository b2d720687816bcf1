// cuBLAS opened at run time (dlopen), so the addon links on machines without cuBLAS and uses the
// user's cuBLAS 13 or 12. Only the few entry points we call are resolved; their C signatures and
// enum values are part of cuBLAS's stable ABI (see DESIGN.md §3), declared here without its header.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

namespace l2e {
namespace cuda {

using cublasHandle_t = void*;
enum : int { kOpN = 0, kOpT = 1 };                 // cublasOperation_t
enum : int { kR32F = 0, kR16BF = 14 };             // cudaDataType
enum : int { kCompute32F = 68 };                   // cublasComputeType_t: CUBLAS_COMPUTE_32F
enum : int { kGemmDefault = -1 };                  // cublasGemmAlgo_t: CUBLAS_GEMM_DEFAULT

struct Cublas {
  int (*create)(cublasHandle_t*) = nullptr;                    // cublasCreate_v2
  int (*destroy)(cublasHandle_t) = nullptr;                    // cublasDestroy_v2
  int (*set_stream)(cublasHandle_t, cudaStream_t) = nullptr;   // cublasSetStream_v2
  int (*gemm_ex)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int,
                 const void*, void*, int, int, int, int) = nullptr;  // cublasGemmEx
  const char* (*status_string)(int) = nullptr;                 // cublasGetStatusString (optional)
  std::string path;                                            // the library that was opened
};

// Opens cuBLAS once per process: $L2E_CUBLAS if set (a path or a soname), else libcublas.so.13, then
// libcublas.so.12. Throws Error naming what was tried when none loads.
const Cublas& cublas();

// Throws Error("cuBLAS <what> failed: <status>") when status != 0.
void cublas_check(int status, const char* what);

}  // namespace cuda
}  // namespace l2e
