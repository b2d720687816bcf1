// The CUDA backend's per-op timer (cuda/op_events.cpp): inner, or inner wrapped in a decorator that
// times every op with CUDA events on stream s when op timing is on (cpu/op_timing.h).
#pragma once
#include <cuda_runtime_api.h>

#include <memory>

#include "core/backend.h"

namespace l2e {
namespace cuda {

std::unique_ptr<Backend> maybe_event_timed(std::unique_ptr<Backend> inner, cudaStream_t s);

}  // namespace cuda
}  // namespace l2e
