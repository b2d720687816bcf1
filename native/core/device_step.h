// A training step kept on the backend's device (the CUDA backend; TrainState drives it, see
// core/train_state.h): the InfoNCE loss added to a pending loss on the device, and the optimizer
// step over every parameter at once — global gradient norm, non-finite skip and clip factor decided
// on the device, one AdamW launch, the gradients' zero ranges cleared (TrainState) — whose outcome
// (with the pending loss) is the step's one read-back. The CPU has one too (cpu/cpu_step.cpp: the op
// table's step, skipping the embedding table's rows no batch named); a backend without one steps
// through the op table.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/adamw_scalars.h"
#include "core/tensor.h"

namespace l2e {

// One parameter tensor of the flat parameter / gradient / moment buffers.
struct AdamwTensor {
  size_t offset = 0, numel = 0;
  bool decay = true;  // weight decay applies (not to biases and norm weights)
};

// The one tensor a backward adds into by rows rather than writes (the embedding table: its scatter):
// [rows, width] elements from `offset` of the parameter layout, `span` of them up to the next
// tensor's offset (rows * width and the padding after it); rows = 0 for none.
struct ScatterTable {
  size_t offset = 0, rows = 0, width = 0, span = 0;
};

// Where a backward adds the table's gradient when the DeviceStep holds it apart from the flat
// gradient buffer (Backend::holds_table_gradients): `rows` [capacity, width] F32, of which the
// batch's ids map to rows given to them, `ids` [n] I32 those rows. Empty: the table is in `g`.
struct TableTarget {
  Buf rows, ids;
  bool empty() const { return rows.empty(); }
};

struct StepOutcome {
  double loss = 0;       // the pending loss (sum of the InfoNCE means since the last read), now cleared
  double grad_norm = 0;  // before clipping
  bool skipped = false;  // the norm or the pending loss was not finite: no update was made
};

class DeviceStep {
 public:
  virtual ~DeviceStep() = default;
  // The infonce op's contract, its mean loss added to the pending loss instead of returned.
  virtual void infonce(const Buf& q, const Buf& p, int B, int G, int P, float temperature, bool in_batch,
                       Buf& scores, Buf& dq, Buf& dp) = 0;
  // Reads back and clears the pending loss (one synchronisation).
  virtual double take_loss() = 0;
  // Clipping to max_grad_norm (<= 0: none), AdamW with `decayed` / `plain` scalars by the tensor's
  // decay flag (none when skipped), the gradients in its zero ranges zeroed; then the one read-back.
  virtual StepOutcome step(const AdamwScalars& decayed, const AdamwScalars& plain, float max_grad_norm) = 0;
  // The table's rows a backward is about to add into: ids [n] (I32, on the backend, each in [0, rows);
  // host_ids the same values on the host), before it runs; where its scatter adds them (empty when
  // the table is part of the flat buffer).
  virtual TableTarget rows_scattered(const Buf& ids, const int32_t* host_ids, int n) = 0;
  // The host wrote the flat gradient buffer g (a table kept in g may hold a gradient in any row now).
  virtual void gradients_written() = 0;
  // The host wrote a moment buffer: nonzero[r] (a byte per row of the table) says whether row r holds
  // any value but +0 there.
  virtual void moment_rows_written(const std::vector<uint8_t>& nonzero) = 0;
  // With the table held apart: its gradient [rows, width] from / to the host, and to zeros.
  virtual void table_gradients_in(const float* host) = 0;
  virtual void table_gradients_out(float* host) = 0;
  virtual void clear_table_gradients() = 0;
};

}  // namespace l2e
