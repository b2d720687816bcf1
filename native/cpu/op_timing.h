// Optional per-op wall-clock timing of the CPU backend, for the benchmark runner (bench/run.mjs):
// when enabled before a model is created, make_cpu_backend() wraps its backend in a decorator that
// times every op-table call (CPU ops are synchronous, so the clock around the call is the op's cost).
// Totals are process-wide and keyed by op name ("linear", "attention_backward", ...).
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
};

void set_op_timing(bool enabled);  // affects backends created afterwards
bool op_timing_enabled();
std::vector<OpTiming> op_timings();  // ops called at least once since the last reset
void reset_op_timings();

// inner, or inner wrapped in the timing decorator when op timing is enabled.
std::unique_ptr<Backend> maybe_timed(std::unique_ptr<Backend> inner);

}  // namespace l2e
