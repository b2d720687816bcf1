// The CPU's training step (core/device_step.h): the op table's step, but for the embedding table's
// rows that no step has named. See cpu_step.cpp.
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "core/backend.h"

namespace l2e {

// L2E_CPU_STEP: unset, empty or "rows" -> true (this step); "ops" -> false (TrainState steps through
// the op table, every row of the table each step: the earlier policy, for comparison); anything else
// throws Error naming it.
bool cpu_step_enabled();

// The step over the flat F32 buffers w, g, m, v (the table's gradient kept in g, at its offset) that
// the CPU backend's ops `be` work on.
std::unique_ptr<DeviceStep> make_cpu_step(Backend& be, Buf& w, Buf& g, Buf& m, Buf& v,
                                          const std::vector<AdamwTensor>& tensors,
                                          const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                                          const ScatterTable& table);

}  // namespace l2e
