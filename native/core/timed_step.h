// A DeviceStep that forwards every call to another, timing its loss ("infonce"), its optimizer step
// ("optimizer_step") and its table rows' bookkeeping ("rows_scattered") with a backend's per-op
// timer: the clock around the call on the CPU (cpu/op_timing.cpp), CUDA events on the stream
// (cuda/op_events.cpp).
#pragma once
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "core/device_step.h"

namespace l2e {

class TimedStep final : public DeviceStep {
 public:
  // timer(op, call): runs call, filing its time under op
  using Timer = std::function<void(const char* op, const std::function<void()>& call)>;
  TimedStep(std::unique_ptr<DeviceStep> inner, Timer timer) : inner_(std::move(inner)), timer_(std::move(timer)) {}
  // inner timed, or nullptr for none (a backend that steps through its ops)
  static std::unique_ptr<DeviceStep> wrap(std::unique_ptr<DeviceStep> inner, Timer timer) {
    if (!inner) return nullptr;
    return std::make_unique<TimedStep>(std::move(inner), std::move(timer));
  }

  void infonce(const Buf& q, const Buf& p, int B, int G, int P, float temperature, bool in_batch, Buf& scores,
               Buf& dq, Buf& dp) override {
    timer_("infonce", [&] { inner_->infonce(q, p, B, G, P, temperature, in_batch, scores, dq, dp); });
  }
  double take_loss() override { return inner_->take_loss(); }
  StepOutcome step(const AdamwScalars& decayed, const AdamwScalars& plain, float max_grad_norm) override {
    StepOutcome o;
    timer_("optimizer_step", [&] { o = inner_->step(decayed, plain, max_grad_norm); });
    return o;
  }
  TableTarget rows_scattered(const Buf& ids, const int32_t* host_ids, int n) override {
    TableTarget t;
    timer_("rows_scattered", [&] { t = inner_->rows_scattered(ids, host_ids, n); });
    return t;
  }
  void gradients_written() override { inner_->gradients_written(); }
  void moment_rows_written(const std::vector<uint8_t>& nonzero) override { inner_->moment_rows_written(nonzero); }
  void table_gradients_in(const float* host) override { inner_->table_gradients_in(host); }
  void table_gradients_out(float* host) override { inner_->table_gradients_out(host); }
  void clear_table_gradients() override { inner_->clear_table_gradients(); }

 private:
  std::unique_ptr<DeviceStep> inner_;
  Timer timer_;
};

}  // namespace l2e
