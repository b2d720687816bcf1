// CUDA emulation build: a census of each kernel's tensor-core and ldmatrix work (census.cpp), which
// shows without a GPU what the kernels claim of themselves: how many matrix products they do
// against the least the problem needs, and whether their ldmatrix reads meet bank conflicts.
//   launches            launches that ran their blocks (a failed one included)
//   mma_flops           2 M N K of every mma.sync m16n8k16 (a warp's) and wgmma (a warp's 16 rows), and
//                       of every emulated cublasGemmEx (entry "cublasGemmEx")
//   ldmatrix_matrices   8x8 matrices read by ldmatrix (.x4: four)
//   ldmatrix_wavefronts shared-memory passes those reads take in the bank model below
// Bank model (CUDA C++ Programming Guide, "Shared Memory" of compute capability 5.x and later, which
// 8.x and 9.x keep): 32 banks, successive 32-bit words in successive banks; a request reading n
// distinct words of one bank takes n passes, one word read by several threads only one. The census
// applies it to each 8x8 matrix of an ldmatrix: its 8 rows of 16 bytes are 128 bytes, one pass of the
// 32 banks at best, and a row address repeated is one read. (How the hardware groups an ldmatrix's
// rows is not in the PTX ISA: one matrix per pass is this model's assumption.) So a matrix takes as
// many passes as the most distinct rows any one 16-byte bank group (address / 16 mod 8) holds;
// conflict-free means wavefronts == matrices. Other shared-memory traffic (cp.async writes, plain loads
// and stores, wgmma's reads through its descriptors) is not counted: a thread's plain access is C++ here,
// and cp.async is not a warp-synchronous instruction that would tell which lanes issue it together.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace l2e {
namespace emu {

struct KernelCensus {
  uint64_t launches = 0, mma_flops = 0, ldmatrix_matrices = 0, ldmatrix_wavefronts = 0;
};

// Counted by the instructions (ptx.cpp, ptx_sm90.cpp), once per warp instruction.
void census_mma(uint64_t flops);
// the 8 row addresses (shared window) of one 8x8 matrix, 16-byte aligned
void census_ldmatrix(const uint64_t (&rows)[8]);

// A library call that does its work at once (the emulated cuBLAS, cublas.cpp): one launch of `name`
// doing `flops` (2 m n k of a GEMM), added to the table directly.
void census_library_call(const char* name, uint64_t flops);
// runtime.cpp: the running launch's counts (kept by the worker running the calling fiber), which go
// to its kernel's entry when its blocks are done (or one failed), and are cleared.
KernelCensus& running_census();
void census_launch_done(const char* kernel, KernelCensus& counts);
// Every kernel's counts since the last take, by the name it was launched under; clears them.
std::map<std::string, KernelCensus> census_take();

}  // namespace emu
}  // namespace l2e
