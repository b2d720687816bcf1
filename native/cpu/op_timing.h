// Optional per-op wall-clock timing of the CPU backend, for the benchmark runner (bench/run.mjs):
// when enabled before a model is created, make_cpu_backend() wraps its backend in a decorator that
// times every op-table call (CPU ops are synchronous, so the clock around the call is the op's cost);
// make_cuda_backend() does the same with CUDA events on its stream (cuda/op_events.cpp).
// Totals are process-wide and keyed by op name ("linear", "attention_backward", ...), with the FLOPs of
// the calls (core/op_flops.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"

namespace l2e {

struct OpTiming {
  std::string op;
  int64_t calls = 0;
  double seconds = 0;
  double flops = 0;  // the matrix products' FLOPs of its calls (core/op_flops.h; 0 for the other ops)
};

void set_op_timing(bool enabled);  // affects backends created afterwards
bool op_timing_enabled();
std::vector<OpTiming> op_timings();  // ops called at least once since the last reset
void reset_op_timings();
// Adds one call of `seconds` (and `flops`) to op's slot (an op of core/ops.def, copy / zero / upload /
// download, or optimizer_step): how a device backend's timer (cuda/op_events.cpp) reports what its
// events measured. false for an unknown name.
bool add_op_time(const std::string& op, double seconds, double flops = 0);

// inner, or inner wrapped in the timing decorator when op timing is enabled.
std::unique_ptr<Backend> maybe_timed(std::unique_ptr<Backend> inner);

}  // namespace l2e
