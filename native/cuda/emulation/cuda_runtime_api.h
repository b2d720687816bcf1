// CUDA emulation build (L2E_CUDA_EMULATE=1): the host half of the CUDA runtime API that the backend
// calls, implemented on the CPU (runtime.cpp). Only what native/cuda uses. Device memory is host
// memory (NaN-filled on allocation, a guard page after each block); streams are in-order and every
// operation completes before it returns, so synchronisation only reports errors.
#pragma once
#include <cstddef>
#include <string>

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorNotReady = 600,
  // a kernel that failed while running (CUDA Runtime API, enum cudaError)
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchTimeout = 702,
  cudaErrorAssert = 710,
  cudaErrorHardwareStackError = 714,
  cudaErrorIllegalInstruction = 715,
  cudaErrorMisalignedAddress = 716,
  cudaErrorInvalidAddressSpace = 717,
  cudaErrorInvalidPc = 718,
  cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
};

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

struct CUstream_st;
using cudaStream_t = CUstream_st*;
constexpr unsigned cudaStreamNonBlocking = 1;

struct cudaDeviceProp {
  char name[256];
  int major, minor;
  size_t totalGlobalMem;
  size_t sharedMemPerBlockOptin;
  int multiProcessorCount;
};

cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMalloc(void** p, size_t bytes);
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
// Pinned host memory and events (host_sync.cpp). Work completes before its call returns, so an event
// is complete once recorded; its time is the host clock at cudaEventRecord.
constexpr unsigned cudaHostAllocDefault = 0;
constexpr unsigned cudaEventDefault = 0;
constexpr unsigned cudaEventDisableTiming = 2;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void* p);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventQuery(cudaEvent_t e);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);
const char* cudaGetErrorString(cudaError_t e);

namespace l2e {
namespace emu {
// Largest dynamic shared memory a block may ask for: the emulated device's opt-in limit (runtime.cpp,
// L2E_CUDA_EMULATE_DEVICE).
size_t max_dynamic_shared();
cudaError_t set_max_dynamic_shared(const void* kernel, int bytes);
// The error of a kernel that failed while running (runtime.cpp), once a synchronisation has reported
// it: every later call that uses the device returns it; cudaSuccess before.
cudaError_t sticky_error();
// The same for a synchronisation: reports a failed kernel's error whether or not one has yet.
cudaError_t synchronized_error();
// Calls that make the host wait for the device (or read its memory) on a real GPU, counted since the
// process started: device-to-host copies; stream, device and event synchronisations and cudaFree
// (which synchronises the device); and host-to-device copies, all of them and those from pageable
// memory (not from cudaHostAlloc's), which the runtime may make synchronous ("API synchronization
// behavior": "If pageable memory must first be staged to pinned memory, the driver may synchronize
// with the stream"). Read by the cudaEmulationHostSyncs test hook.
struct HostSyncCounts {
  unsigned long long device_to_host, synchronize, uploads, pageable_uploads;
};
HostSyncCounts host_sync_counts();
void count_device_to_host();
void count_synchronize();
// counts a host-to-device copy, and apart one whose source is not inside one cudaHostAlloc block
void count_upload(const void* src, size_t bytes);
// Whether [p, p + bytes) lies inside one cudaHostAlloc block (host_sync.cpp): memory a kernel may read
// too (pinned and mapped, the unified address space's).
bool pinned_range(const void* p, size_t bytes);
// A library call's operand (cuBLAS reads and writes them in its own kernels): true when [p, p + bytes)
// lies inside one device allocation or one cudaHostAlloc block. Otherwise a GPU's kernel faults on it
// (cudaErrorIllegalAddress, the whole context's from then on): recorded as a kernel's fault is, for the
// next synchronisation to report, naming `what`; false.
bool device_operand(const void* p, size_t bytes, const std::string& what);
}  // namespace emu
}  // namespace l2e

template <typename F>
cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaErrorInvalidValue;
  return l2e::emu::set_max_dynamic_shared(reinterpret_cast<const void*>(kernel), value);
}
