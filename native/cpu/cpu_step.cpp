// The CPU's training step (core/device_step.h). It does what TrainState's step through the op table
// does, with the same kernels and so the same results bit for bit: the pending loss, the global
// gradient norm, the non-finite skip, clipping, AdamW, the zero ranges cleared. But it knows which
// of the embedding table's rows can hold anything:
//   named:  rows a backward added into since the last clearing (rows_scattered, from the batch's ids
//           on the host): the only rows of the table's gradient that may be nonzero;
//   moving: rows whose AdamW moments may be nonzero: named at some step, or written by the host
//           (moment_rows_written).
// A zero adds nothing to the norm (cpu/grad_norm.cpp) and stays zero when clipped or cleared, and
// AdamW without weight decay leaves a row with a zero gradient (of either sign) and +0 moments exactly
// as it was (cpu/adamw.cpp). So the norm reads the named rows, clipping scales them, the clearing
// zeroes them, and AdamW steps the moving rows, instead of the whole table each step (the demo's
// 32000 rows, of which its batches name a few thousand over a run). With weight decay on the table
// every row moves (w *= 1 - lr wd): then AdamW steps them all. After the host writes the gradients
// (gradients_written) the rows it wrote anything but zeros into count as named.
#include "cpu/cpu_step.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "cpu/kernels.h"
#include "cpu/parallel.h"

namespace l2e {

bool cpu_step_enabled() {
  const char* v = std::getenv("L2E_CPU_STEP");
  if (!v || !*v || std::string(v) == "rows") return true;
  if (std::string(v) == "ops") return false;
  throw Error(std::string("L2E_CPU_STEP=") + v +
              ": expected rows (the default: the embedding table's unused rows skipped) or ops (every row, each step)");
}

namespace {

using cpu::Range;

// fn(b, e) over pieces of `ranges` (sorted, disjoint), on the pool's threads: their elements end to
// end are split as parallel_for splits [0, total), at least `grain` a thread.
void for_ranges(const std::vector<Range>& ranges, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  std::vector<int64_t> start(ranges.size() + 1, 0);  // where each range begins, end to end
  for (size_t r = 0; r < ranges.size(); r++) start[r + 1] = start[r] + (ranges[r].end - ranges[r].begin);
  parallel_for(start.back(), [&](int64_t s, int64_t e, int) {
    size_t r = size_t(std::upper_bound(start.begin(), start.end(), s) - start.begin()) - 1;
    for (; r < ranges.size() && start[r] < e; r++) {
      const int64_t lo = std::max(s, start[r]), hi = std::min(e, start[r + 1]);
      if (lo < hi) fn(ranges[r].begin + (lo - start[r]), ranges[r].begin + (hi - start[r]));
    }
  }, grain);
}

// Appends [b, e) to sorted ranges, joining it to the last when they touch.
void append(std::vector<Range>& out, int64_t b, int64_t e) {
  if (b >= e) return;
  if (!out.empty() && out.back().end == b) out.back().end = e;
  else out.push_back(Range{b, e});
}

class CpuStep final : public DeviceStep {
 public:
  CpuStep(Backend& be, Buf& w, Buf& g, Buf& m, Buf& v, const std::vector<AdamwTensor>& tensors,
          const std::vector<std::pair<size_t, size_t>>& zero_ranges, const ScatterTable& table)
      : be_(be), w_(w.f32()), g_(g.f32()), m_(m.f32()), v_(v.f32()), n_(int64_t(g.numel)), tensors_(tensors),
        width_(int64_t(table.width)), rows_(int64_t(table.rows)), first_(int64_t(table.offset)),
        last_(first_ + rows_ * width_) {
    if (w.numel != g.numel || m.numel != g.numel || v.numel != g.numel)
      throw Error("cpu training step: the weights, gradients and moments differ in size");
    // The rows are tracked when the table's rows lie within one zero range (the backward adds into
    // them); the rest of the zero ranges is cleared whole.
    bool covered = false;
    for (const auto& [b, e] : zero_ranges) {
      if (int64_t(b) <= first_ && last_ <= int64_t(e)) covered = true;
      append(zero_outside_, int64_t(b), std::min(int64_t(e), first_));
      append(zero_outside_, std::max(int64_t(b), last_), int64_t(e));
    }
    if (!(rows_ > 0 && width_ > 0 && last_ <= n_ && covered)) {  // every zero range whole
      zero_outside_.clear();
      for (const auto& [b, e] : zero_ranges) append(zero_outside_, int64_t(b), int64_t(e));
      rows_ = 0;
    }
    named_.assign(size_t(rows_), 0);
    moving_.assign(size_t(rows_), 0);
  }

  void infonce(const Buf& q, const Buf& p, int B, int G, int P, float temperature, bool in_batch, Buf& scores,
               Buf& dq, Buf& dp) override {
    loss_ += be_.infonce(q, p, B, G, P, temperature, in_batch, scores, dq, dp);
  }

  double take_loss() override {
    const double loss = loss_;
    loss_ = 0;
    return loss;
  }

  StepOutcome step(const AdamwScalars& decayed, const AdamwScalars& plain, float max_grad_norm) override {
    StepOutcome o;
    o.loss = take_loss();
    const std::vector<Range> held = gradient_ranges();  // where g may be nonzero
    o.grad_norm = std::sqrt(cpu::sumsq(g_, n_, held));
    if (!std::isfinite(o.grad_norm) || !std::isfinite(o.loss)) {
      o.skipped = true;
      clear();
      return o;
    }
    // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1
    if (max_grad_norm > 0) {
      const double coef = double(max_grad_norm) / (o.grad_norm + 1e-6);
      const float s = float(coef);
      if (coef < 1.0)
        for_ranges(held, 65536, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; i++) g_[i] *= s;
        });
    }
    for (size_t r = 0; r < named_.size(); r++) moving_[r] |= named_[r];
    for (const AdamwTensor& t : tensors_) {
      const AdamwScalars& k = t.decay ? decayed : plain;
      const bool table = rows_ > 0 && int64_t(t.offset) == first_ && int64_t(t.numel) == last_ - first_;
      const std::vector<Range> span{Range{int64_t(t.offset), int64_t(t.offset + t.numel)}};
      for_ranges(table && !k.decays ? rows_of(moving_) : span, 16384,
                 [&](int64_t b, int64_t e) { cpu::adamw_range(w_, g_, m_, v_, b, e, k); });
    }
    clear();
    return o;
  }

  TableTarget rows_scattered(const Buf& ids, const int32_t* host_ids, int n) override {
    (void)ids;
    for (int i = 0; i < n && rows_ > 0; i++) {
      const int32_t r = host_ids[i];
      if (r < 0 || int64_t(r) >= rows_) throw Error("rows_scattered: token id " + std::to_string(r) + " is outside the table");
      named_[size_t(r)] = 1;
    }
    return TableTarget{};  // the table's gradient is part of g
  }

  // The rows the host wrote anything but +0 into (a sign bit or a NaN counts) count as named.
  void gradients_written() override {
    parallel_for(rows_, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; r++) {
        const float* row = g_ + first_ + r * width_;
        if (std::any_of(row, row + width_, [](float x) { return x != 0.0f || std::signbit(x); })) named_[size_t(r)] = 1;
      }
    }, std::max<int64_t>(1, 65536 / std::max<int64_t>(width_, 1)));
  }

  void moment_rows_written(const std::vector<uint8_t>& nonzero) override {
    if (rows_ == 0) return;
    if (nonzero.size() != size_t(rows_)) throw Error("moment_rows_written: expected a byte for each of the table's rows");
    for (size_t r = 0; r < nonzero.size(); r++) moving_[r] |= nonzero[r] ? 1 : 0;
  }

  // The table's gradient is part of g: TrainState reads and writes it with the rest.
  void table_gradients_in(const float*) override { throw Error("table_gradients_in: the CPU step keeps the table's gradient in the flat buffer"); }
  void table_gradients_out(float*) override { throw Error("table_gradients_out: the CPU step keeps the table's gradient in the flat buffer"); }
  void clear_table_gradients() override {}

 private:
  // The rows flagged in `flags`, as ranges of the flat layout.
  std::vector<Range> rows_of(const std::vector<uint8_t>& flags) const {
    std::vector<Range> out;
    for (int64_t r = 0; r < rows_; r++)
      if (flags[size_t(r)]) append(out, first_ + r * width_, first_ + (r + 1) * width_);
    return out;
  }
  // Where g may be nonzero: all of it but the table's rows that were not named.
  std::vector<Range> gradient_ranges() const {
    if (rows_ == 0) return {Range{0, n_}};
    std::vector<Range> out;
    append(out, 0, first_);
    for (const Range& r : rows_of(named_)) append(out, r.begin, r.end);
    append(out, last_, n_);
    return out;
  }
  // The gradients spent: the zero ranges to zeros again, of the table's rows the named ones.
  void clear() {
    std::vector<Range> ranges = zero_outside_;
    if (rows_ > 0) {
      for (const Range& r : rows_of(named_)) ranges.push_back(r);
      std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
    }
    for_ranges(ranges, int64_t(1) << 18, [&](int64_t b, int64_t e) { std::memset(g_ + b, 0, size_t(e - b) * sizeof(float)); });
    std::fill(named_.begin(), named_.end(), uint8_t(0));
  }

  Backend& be_;
  float *w_, *g_, *m_, *v_;
  int64_t n_;
  std::vector<AdamwTensor> tensors_;
  int64_t width_, rows_, first_, last_;  // the table: rows_ rows of width_, elements [first_, last_); rows_ 0: untracked
  std::vector<Range> zero_outside_;  // the zero ranges but the table's rows (all of them when untracked)
  std::vector<uint8_t> named_;       // [rows_]: named since the last clearing
  std::vector<uint8_t> moving_;      // [rows_]: moments may be nonzero
  double loss_ = 0;                  // the pending loss
};

}  // namespace

std::unique_ptr<DeviceStep> make_cpu_step(Backend& be, Buf& w, Buf& g, Buf& m, Buf& v,
                                          const std::vector<AdamwTensor>& tensors,
                                          const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                                          const ScatterTable& table) {
  return std::make_unique<CpuStep>(be, w, g, m, v, tensors, zero_ranges, table);
}

}  // namespace l2e
