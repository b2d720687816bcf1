// The CUDA backend's DeviceStep (core/device_step.h), on the backend's stream and memory pool.
#pragma once
#include <cuda_runtime_api.h>

#include <memory>
#include <utility>
#include <vector>

#include "core/device_step.h"

namespace l2e {
namespace cuda {

class DevicePool;

std::unique_ptr<DeviceStep> make_device_step(cudaStream_t s, DevicePool& pool, Buf& w, Buf& g, Buf& m, Buf& v,
                                             Buf* shadow, const std::vector<AdamwTensor>& tensors,
                                             const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                                             const ScatterTable& table);
// Whether that step holds `table`'s gradient apart from g (Backend::holds_table_gradients).
bool holds_table_gradients(const ScatterTable& table);

}  // namespace cuda
}  // namespace l2e
