// CUDA emulation build: what a .cu file gets from <cuda_runtime.h> (the runtime API and the device
// side: thread indices, barriers, warp exchange, atomics, intrinsics). See device.h.
#pragma once
#include "cuda_runtime_api.h"
#include "device.h"
