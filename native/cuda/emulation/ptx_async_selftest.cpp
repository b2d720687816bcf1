// cudaEmulationAsyncSelfTest(name) -> string: kernels that check the emulator's cp.async
// (ptx_async.cpp) against the PTX ISA, independently of the attention kernels (emulation build
// only; test/gpu/emulation-async.test.ts). "ok", "wrong values", or the launch's error message:
//   groups        sizes 16 (.cg), 8 and 4 (.ca), a partial src-size (zero fill) and src-size 0; a
//                 destination holds poison until its group is waited for, wait_group 1 lands all
//                 but the newest group, wait_all the rest;
//   pipeline      a two-stage pipeline over 6 tiles (issue tile i+1, wait_group 1, barrier, read
//                 a neighbour's chunk of tile i): exact sums;
//   pipeline_missing_wait  the same kernel with a planted bug, wait_group 2 (one group too many left
//                 in flight): the emulator must make it fail, not pass by luck (a stage is refilled
//                 while the copy into it is in flight: a launch error);
//   shape_change  a one-thread block, then a 32-thread block of the same index and grid: per-thread
//                 state follows the block's shape;
//   cg_size, misaligned   misuse that must be a launch error;
//   same_location, write_in_flight, source_modified  undefined in the PTX ISA, launch errors here: two
//                 copies of one group to the same bytes, a store into a destination, or into a source,
//                 between a copy's issue and its wait;
//   same_data     two threads copy the same data to the same bytes, each waiting for its own: no
//                 false alarm (what either leaves there is the same).
#include <napi.h>

#include <cstring>
#include <string>

#include "addon/registry.h"
#include "cuda_runtime.h"
#include "ptx_async.h"

namespace l2e {
namespace emu {
namespace {

unsigned saddr(const void* p) { return unsigned(shared_offset(p)); }

// src: 64 floats, src[i] = i + 1. One thread.
void groups_kernel(const float* src, int* bad) {
  float* s = static_cast<float*>(dynamic_shared());  // 64 floats
  auto poisoned = [](const float* p, int n) {
    uint32_t all = 0xffffffffu;
    for (int i = 0; i < n; i++) {
      uint32_t x;
      std::memcpy(&x, p + i, 4);
      all &= x;
    }
    return all == 0xffffffffu;
  };
  ptx::cp_async(true, saddr(s), src, 16, 16);            // s[0..3]   = 1..4
  ptx::cp_async(false, saddr(s + 4), src + 4, 8, 8);     // s[4..5]   = 5, 6
  ptx::cp_async(false, saddr(s + 6), src + 6, 4, 4);     // s[6]      = 7
  ptx::cp_async_commit_group();
  ptx::cp_async(true, saddr(s + 8), src + 8, 16, 8);     // s[8..9] = 9, 10; s[10..11] = 0
  ptx::cp_async(true, saddr(s + 12), src + 12, 16, 0);   // s[12..15] = 0, src unread
  ptx::cp_async_commit_group();
  ptx::cp_async(false, saddr(s + 16), src + 16, 4, 4);   // not committed before wait_all
  if (!poisoned(s, 7) || !poisoned(s + 8, 9)) bad[0] = 1;  // nothing has landed yet
  ptx::cp_async_wait_group(1);                              // the first group only
  for (int i = 0; i < 7; i++)
    if (s[i] != float(i + 1)) bad[0] = 1;
  if (!poisoned(s + 8, 9)) bad[0] = 1;
  ptx::cp_async_wait_all();
  const float want[9] = {9, 10, 0, 0, 0, 0, 0, 0, 17};
  for (int i = 0; i < 9; i++)
    if (s[8 + i] != want[i]) bad[0] = 1;
}

// 32 threads; tile i = 128 floats (32 chunks of 4), src[i*128 + j] = i * 1000 + j. Stage buffers
// of 128 floats; thread t sums chunk (t + 1) % 32 of every tile, i.e. another thread's copy.
constexpr int kTiles = 6;
void pipeline_kernel(const float* src, float* out, int plant) {
  float* s = static_cast<float*>(dynamic_shared());  // [2][128]
  const int t = int(threadIdx.x), c = (t + 1) % 32;
  auto issue = [&](int i) {
    if (i < kTiles) ptx::cp_async(true, saddr(s + (i % 2) * 128 + 4 * t), src + i * 128 + 4 * t, 16, 16);
    ptx::cp_async_commit_group();  // one group per tile, empty past the end
  };
  issue(0);
  float acc = 0.0f;
  for (int i = 0; i < kTiles; i++) {
    issue(i + 1);
    if (plant) ptx::cp_async_wait_group(2);  // the bug: tile i may still be in flight
    else ptx::cp_async_wait_group(1);        // all but tile i + 1's group: tile i has landed
    __syncthreads();
    for (int e = 0; e < 4; e++) acc += s[(i % 2) * 128 + 4 * c + e];
    __syncthreads();  // stage i % 2 is refilled by the next iteration's issue
  }
  out[t] = acc;
}

// Thread t copies src[t] to shared word t, waits, and checks it (after a barrier: thread (t+1) % n's).
void words_kernel(const float* src, int* bad) {
  float* s = static_cast<float*>(dynamic_shared());
  const int t = int(threadIdx.x), n = int(blockDim.x);
  ptx::cp_async(false, saddr(s + t), src + t, 4, 4);
  ptx::cp_async_wait_all();
  __syncthreads();
  if (s[(t + 1) % n] != src[(t + 1) % n]) bad[0] = 1;
}

void cg_size_kernel(const float* src, int*) {
  ptx::cp_async(true, saddr(dynamic_shared()), src, 8, 8);
}

void misaligned_kernel(const float* src, int*) {
  ptx::cp_async(false, saddr(static_cast<char*>(dynamic_shared()) + 4), src, 16, 16);
}

void same_location_kernel(const float* src, int*) {
  float* s = static_cast<float*>(dynamic_shared());
  ptx::cp_async(true, saddr(s), src, 16, 16);
  ptx::cp_async(false, saddr(s + 2), src + 8, 4, 4);  // inside the first copy's 16 bytes
}

void write_in_flight_kernel(const float* src, int*) {
  float* s = static_cast<float*>(dynamic_shared());
  ptx::cp_async(true, saddr(s + 4), src, 16, 16);
  s[6] = 1.0f;  // bytes 24-27; the first that differs from the copy's (2.0f): 26
  ptx::cp_async_wait_all();
}

void same_data_kernel(const float* src, int* bad) {
  float* s = static_cast<float*>(dynamic_shared());
  ptx::cp_async(true, saddr(s), src, 16, 16);
  ptx::cp_async_wait_all();
  __syncthreads();
  for (int i = 0; i < 4; i++)
    if (s[i] != src[i]) bad[0] = 1;
}

void source_modified_kernel(const float* src, int*) {
  float* s = static_cast<float*>(dynamic_shared());
  ptx::cp_async(true, saddr(s), src, 16, 16);
  const_cast<float*>(src)[1] = -1.0f;
  ptx::cp_async_wait_all();
}

std::string run(const std::string& name) {
  float *src = nullptr, *out = nullptr;
  int* bad = nullptr;
  if (cudaMalloc(reinterpret_cast<void**>(&src), kTiles * 128 * sizeof(float)) != cudaSuccess ||
      cudaMalloc(reinterpret_cast<void**>(&out), 32 * sizeof(float)) != cudaSuccess ||
      cudaMalloc(reinterpret_cast<void**>(&bad), sizeof(int)) != cudaSuccess)
    return std::string("cudaMalloc failed: ") + cudaGetErrorString(cudaGetLastError());
  for (int i = 0; i < kTiles * 128; i++) src[i] = name == "groups" ? float(i + 1) : float((i / 128) * 1000 + i % 128);
  *bad = 0;
  bool pipeline = false;
  if (name == "groups") L2E_EMU_LAUNCH(groups_kernel, 1, 1, 64 * sizeof(float), nullptr)(src, bad);
  else if (name == "pipeline" || name == "pipeline_missing_wait") {
    pipeline = true;
    L2E_EMU_LAUNCH(pipeline_kernel, 1, 32, 2 * 128 * sizeof(float), nullptr)(src, out, int(name != "pipeline"));
  } else if (name == "shape_change") {  // the same block index and grid, then a wider block
    L2E_EMU_LAUNCH(words_kernel, 1, 1, 128, nullptr)(src, bad);
    L2E_EMU_LAUNCH(words_kernel, 1, 32, 128, nullptr)(src, bad);
  } else if (name == "cg_size") L2E_EMU_LAUNCH(cg_size_kernel, 1, 1, 64, nullptr)(src, bad);
  else if (name == "misaligned") L2E_EMU_LAUNCH(misaligned_kernel, 1, 1, 64, nullptr)(src, bad);
  else if (name == "same_location") L2E_EMU_LAUNCH(same_location_kernel, 1, 1, 64, nullptr)(src, bad);
  else if (name == "write_in_flight") L2E_EMU_LAUNCH(write_in_flight_kernel, 1, 1, 64, nullptr)(src, bad);
  else if (name == "same_data") L2E_EMU_LAUNCH(same_data_kernel, 1, 2, 64, nullptr)(src, bad);
  else if (name == "source_modified") L2E_EMU_LAUNCH(source_modified_kernel, 1, 1, 64, nullptr)(src, bad);
  else {
    cudaFree(src), cudaFree(out), cudaFree(bad);
    return "unknown self-test '" + name + "'";
  }
  // a kernel's failure is reported at the next synchronisation, as on a GPU
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  (void)cudaGetLastError();
  std::string r = e == cudaSuccess ? "ok" : cudaGetErrorString(e);
  if (e == cudaSuccess && *bad) r = "wrong values";
  if (e == cudaSuccess && pipeline)
    for (int t = 0; t < 32; t++) {
      const int c = (t + 1) % 32;
      float want = 0.0f;  // sum over tiles i, elements e of i * 1000 + 4c + e
      for (int i = 0; i < kTiles; i++)
        for (int el = 0; el < 4; el++) want += float(i * 1000 + 4 * c + el);
      if (!(out[t] == want)) r = "wrong values";  // NaN (poison) fails too
    }
  cudaFree(src), cudaFree(out), cudaFree(bad);
  return r;
}

Napi::Value AsyncSelfTest(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), run(info[0].As<Napi::String>().Utf8Value()));
}

void register_async_selftest(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaEmulationAsyncSelfTest", Napi::Function::New(env, AsyncSelfTest, "cudaEmulationAsyncSelfTest"));
}

}  // namespace

L2E_REGISTER(cuda_emulation_async_selftest, register_async_selftest);

}  // namespace emu
}  // namespace l2e
