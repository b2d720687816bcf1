#include "core/train_state.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/adamw_scalars.h"
#include "core/weights_io.h"

#include "core/host_memory.h"

namespace l2e {

TrainState::TrainState(Model& m) : model_(m) {
  (void)model_.param_buffer();  // throws for a model held in bf16 / int8 (inference only)
  Backend& be = model_.backend();
  const size_t n = model_.num_params();
  if (be.name() == "cpu") check_host_memory(uint64_t(n) * 3 * 4, "training (gradients and AdamW moments of " + std::to_string(n) + " parameters)");
  table_ = model_.grad_scatter_table();
  table_held_ = be.holds_table_gradients(table_);  // then the device step keeps the table's gradient
  grads_ = be.alloc(n - (table_held_ ? table_.span : 0), DType::F32);
  m_ = be.alloc(n, DType::F32);
  v_ = be.alloc(n, DType::F32);
  be.zero(grads_);
  be.zero(m_);
  be.zero(v_);
  if (model_.param_buffer().dtype != DType::F32) {
    // the F32 master of the (bf16) parameters, as halves (core/master_halves.h): the parameters and
    // these low halves, zero while the master is the parameters' own values
    master_ = be.alloc(n, DType::U16);
    be.zero(master_);
    // parameters loaded from F32 files: the master starts from the file's values, not their rounding
    try {
      for (const auto& [name, src] : model_.f32_sources()) {
        const ParamInfo& p = model_.param(name);
        std::vector<float> values(p.numel);
        read_file_range(src.path, src.offset, uint64_t(p.numel) * 4, values.data());
        Buf hi = model_.view(model_.param_buffer(), p.offset, p.numel), lo = model_.view(master_, p.offset, p.numel);
        be.upload_master(hi, lo, values.data(), p.numel, DType::F32);
      }
    } catch (...) {  // the file changed or went away since loading: nothing allocated here survives
      for (Buf* b : {&grads_, &m_, &v_, &master_}) be.free(*b);
      throw;
    }
    model_.attach_master(&master_);  // from now on setTensor / loadTensors write the master too
  }
  for (const auto& [b, e] : model_.grad_zero_ranges()) {  // in grads_' elements: past the table's span when held
    const size_t base = table_held_ ? table_.span : 0;
    if (e > base) zero_ranges_.emplace_back(std::max(b, base) - base, e - base);
  }
  // The no-decay set, decided once: like the Hugging Face Trainer, biases and norm weights get none.
  for (const ParamInfo& p : model_.params()) {
    const bool no_decay = p.name.find("bias") != std::string::npos || p.name.find("norm") != std::string::npos;
    tensors_.push_back(AdamwTensor{p.offset, p.numel, !no_decay});
  }
  try {
    Buf& w = master_.empty() ? model_.param_buffer() : master_;
    device_step_ = be.make_device_step(w, grads_, m_, v_, master_.empty() ? nullptr : &model_.param_buffer(), tensors_,
                                       zero_ranges_, table_);
  } catch (...) {
    if (!master_.empty()) model_.attach_master(nullptr);
    for (Buf* b : {&grads_, &m_, &v_, &master_})
      if (!b->empty()) be.free(*b);
    throw;
  }
  // from here each step's activations come and go: the backend keeps what it frees for the next step
  be.hold_freed_memory(true);
}

TrainState::~TrainState() {
  release_chunks();
  device_step_.reset();
  Backend& be = model_.backend();
  be.hold_freed_memory(false);  // the steps' memory goes back
  if (!master_.empty()) model_.attach_master(nullptr);
  be.free(grads_);
  be.free(m_);
  be.free(v_);
  if (!master_.empty()) be.free(master_);
}

void TrainState::free_kept(Kept& k) {
  model_.free_activations(k.acts);
  model_.free_batch(k.batch);
}

void TrainState::release_chunks() {
  Backend& be = model_.backend();
  for (auto& [id, k] : kept_) free_kept(k);
  kept_.clear();
  for (auto& [id, e] : emb_) be.free(e);
  emb_.clear();
  dslice_.clear();
  if (!demb_.empty()) be.free(demb_);
}

std::vector<float> TrainState::forward_chunk(int id, const std::vector<int32_t>& ids, const std::vector<int32_t>& cu,
                                             bool keep, bool download) {
  const int B = int(cu.size()) - 1;
  Backend& be = model_.backend();
  auto old = kept_.find(id);
  if (old != kept_.end()) {
    free_kept(old->second);
    kept_.erase(old);
  }
  auto old_emb = emb_.find(id);
  if (old_emb != emb_.end()) {
    be.free(old_emb->second);
    emb_.erase(old_emb);
  }
  Kept k;
  k.batch = model_.make_batch(ids.data(), int(ids.size()), cu.data(), B);
  std::vector<float> emb(download ? size_t(B) * model_.config().dense : 0);
  Buf kept_emb;
  try {
    // keep = false still needs backward-ready activations only if kept; encode-style otherwise
    model_.forward(k.batch, k.acts, keep);
    kept_emb = be.alloc(k.acts.emb.numel, DType::F32);
    be.copy(kept_emb, k.acts.emb);
    if (download) be.download(k.acts.emb, emb.data());
  } catch (...) {
    if (!kept_emb.empty()) be.free(kept_emb);
    free_kept(k);
    throw;
  }
  emb_.emplace(id, kept_emb);
  if (keep) {
    kept_.emplace(id, std::move(k));
  } else {
    free_kept(k);
  }
  return emb;
}

void TrainState::backward_chunk(int id, const std::vector<int32_t>& ids, const std::vector<int32_t>& cu,
                                const std::vector<float>* d_emb) {
  const int B = int(cu.size()) - 1;
  const size_t P = model_.config().dense;
  const GradSlice* slice = nullptr;
  if (d_emb) {
    if (d_emb->size() != size_t(B) * P) throw Error("backward_chunk: embedding gradient has the wrong size");
  } else {
    auto s = dslice_.find(id);
    if (s == dslice_.end())
      throw Error("backward_chunk: chunk " + std::to_string(id) + " has no embedding gradient (compute the loss over it first)");
    if (s->second.rows != size_t(B))
      throw Error("backward_chunk: chunk " + std::to_string(id) + " differs from the one the loss was computed over");
    slice = &s->second;
  }
  Kept k;
  auto it = kept_.find(id);
  if (it != kept_.end()) {
    k = std::move(it->second);
    kept_.erase(it);
    if (k.batch.T != int(ids.size()) || k.batch.B != B) {
      free_kept(k);
      throw Error("backward_chunk: chunk " + std::to_string(id) + " differs from its forward pass");
    }
  } else {
    // GradCache: the chunk's activations were not kept, so run its forward again (same weights,
    // same inputs: the same activations) and keep them this time.
    k.batch = model_.make_batch(ids.data(), int(ids.size()), cu.data(), B);
    try {
      model_.forward(k.batch, k.acts, true);
    } catch (...) {
      free_kept(k);
      throw;
    }
  }
  Backend& be = model_.backend();
  Buf d;  // d loss / d emb: emb is F32 on every backend
  const bool accumulate = !write_next_;
  try {
    TableTarget table;  // before the scatter adds into them
    if (device_step_) table = device_step_->rows_scattered(k.batch.ids, ids.data(), k.batch.T);
    const TableTarget* held = table_held_ ? &table : nullptr;
    if (d_emb) {
      d = be.alloc(size_t(B) * P, DType::F32);
      be.upload(d, d_emb->data(), d_emb->size(), DType::F32);
      model_.backward(k.batch, k.acts, d, grads_, accumulate, held);
    } else {
      model_.backward(k.batch, k.acts, model_.view(*slice->grad, slice->row0 * P, slice->rows * P), grads_,
                      accumulate, held);
    }
  } catch (...) {
    if (!d.empty()) be.free(d);
    free_kept(k);
    if (!accumulate) zero_grads();  // part written, part an earlier step's: none of it a gradient
    throw;
  }
  if (!d.empty()) be.free(d);
  free_kept(k);
  write_next_ = false;
  stale_ = false;
}

void TrainState::loss_chunks(const std::vector<int>& chunks, int B, int G, float temperature, bool in_batch,
                             float grad_scale) {
  const size_t P = model_.config().dense;
  const size_t rows = size_t(B) * (1 + size_t(G));
  const std::string batch = std::to_string(B) + " queries and " + std::to_string(size_t(B) * G) + " passages";
  Backend& be = model_.backend();
  dslice_.clear();
  if (!demb_.empty()) be.free(demb_);
  Buf emb, scores;
  try {
    emb = be.alloc(rows * P, DType::F32);
    demb_ = be.alloc(rows * P, DType::F32);
    scores = be.alloc(size_t(B) * B * G, DType::F32);
    // the chunks' embeddings, end to end: chunks are cut from the texts in order
    size_t row = 0;
    for (int id : chunks) {
      auto e = emb_.find(id);
      if (e == emb_.end()) throw Error("loss: chunk " + std::to_string(id) + " has no embeddings (run its forward first)");
      const size_t r = e->second.numel / P;
      if (row + r > rows)
        throw Error("loss: the chunks hold more than the " + std::to_string(rows) + " rows of " + batch);
      Buf dst = model_.view(emb, row * P, r * P);
      be.copy(dst, e->second);
      dslice_[id] = GradSlice{&demb_, row, r};
      row += r;
    }
    if (row != rows)
      throw Error("loss: the chunks hold " + std::to_string(row) + " rows, expected " + std::to_string(rows) + " (" + batch + ")");
    const Buf q = model_.view(emb, 0, size_t(B) * P), p = model_.view(emb, size_t(B) * P, size_t(B) * G * P);
    Buf dq = model_.view(demb_, 0, size_t(B) * P), dp = model_.view(demb_, size_t(B) * P, size_t(B) * G * P);
    if (device_step_) device_step_->infonce(q, p, B, G, int(P), temperature, in_batch, scores, dq, dp);
    else pending_loss_ += be.infonce(q, p, B, G, int(P), temperature, in_batch, scores, dq, dp);
    if (grad_scale != 1.0f) be.scale(demb_, demb_.numel, grad_scale);
  } catch (...) {
    dslice_.clear();
    for (Buf* b : {&emb, &scores, &demb_})
      if (!b->empty()) be.free(*b);
    throw;
  }
  for (Buf* b : {&emb, &scores}) be.free(*b);
}

double TrainState::take_loss() {
  if (device_step_) return device_step_->take_loss();
  const double loss = pending_loss_;
  pending_loss_ = 0;
  return loss;
}

float TrainState::infonce(const std::vector<float>& q, const std::vector<float>& p, int B, int G, float temperature,
                          bool in_batch, std::vector<float>& dq, std::vector<float>& dp, std::vector<float>& scores) {
  const int P = model_.config().dense;
  if (q.size() != size_t(B) * P || p.size() != size_t(B) * G * P) throw Error("infonce: embedding sizes do not match B, G");
  Backend& be = model_.backend();
  Buf bq = be.alloc(q.size(), DType::F32), bp = be.alloc(p.size(), DType::F32);
  Buf bs = be.alloc(size_t(B) * B * G, DType::F32), bdq = be.alloc(q.size(), DType::F32),
      bdp = be.alloc(p.size(), DType::F32);
  float loss;
  try {
    be.upload(bq, q.data(), q.size(), DType::F32);
    be.upload(bp, p.data(), p.size(), DType::F32);
    loss = be.infonce(bq, bp, B, G, P, temperature, in_batch, bs, bdq, bdp);
    dq.resize(q.size());
    dp.resize(p.size());
    scores.resize(bs.numel);
    be.download(bdq, dq.data());
    be.download(bdp, dp.data());
    be.download(bs, scores.data());
  } catch (...) {
    for (Buf* b : {&bq, &bp, &bs, &bdq, &bdp}) be.free(*b);
    throw;
  }
  for (Buf* b : {&bq, &bp, &bs, &bdq, &bdp}) be.free(*b);
  return loss;
}

double TrainState::grad_norm() {
  settle_grads();
  return std::sqrt(model_.backend().sumsq(grads_, grads_.numel));
}

StepResult TrainState::step(const OptimizerHyper& h) {
  Backend& be = model_.backend();
  // AdamW's bias correction divides by 1 - beta1^step: step 0 (or less) would write NaN/Inf weights.
  if (h.step < 1) throw Error("optimizer step is 1-based, got " + std::to_string(h.step));
  StepResult r;
  settle_grads();  // a step with no backward since the last one: its gradients are zeros
  // the weights in nn.Linear's layout, as the gradients are: an encode since the backward may have
  // packed them in place for its GEMM (the CPU's, Model::pack_weights)
  (void)model_.param_buffer();
  if (device_step_) {
    const AdamwScalars decayed = adamw_scalars(h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.step),
                       plain = adamw_scalars(h.lr, h.beta1, h.beta2, h.eps, 0.0f, h.step);
    const StepOutcome o = device_step_->step(decayed, plain, h.max_grad_norm);  // clears zero_ranges_
    gradients_spent();
    r.grad_norm = o.grad_norm;
    r.skipped = o.skipped;
    r.loss = o.loss;
    return r;
  }
  r.loss = take_loss();
  r.grad_norm = grad_norm();
  if (!std::isfinite(r.grad_norm) || !std::isfinite(r.loss)) {
    r.skipped = true;
    clear_zero_ranges();
    gradients_spent();
    return r;
  }
  // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1
  if (h.max_grad_norm > 0) {
    const double coef = double(h.max_grad_norm) / (r.grad_norm + 1e-6);
    if (coef < 1.0) be.scale(grads_, grads_.numel, float(coef));
  }
  // With a master, AdamW steps it through its halves: the low ones and the model's parameters.
  Buf& params = model_.param_buffer();
  Buf& w = master_.empty() ? params : master_;
  for (const AdamwTensor& t : tensors_) {
    Buf pw = model_.view(w, t.offset, t.numel), pg = model_.view(grads_, t.offset, t.numel),
        pm = model_.view(m_, t.offset, t.numel), pv = model_.view(v_, t.offset, t.numel);
    Buf shadow = model_.view(params, t.offset, t.numel);
    be.adamw(pw, pg, pm, pv, t.numel, h.lr, h.beta1, h.beta2, h.eps, t.decay ? h.weight_decay : 0.0f, h.step,
             master_.empty() ? nullptr : &shadow);
  }
  clear_zero_ranges();
  gradients_spent();
  return r;
}

void TrainState::zero_grads() {
  model_.backend().zero(grads_);
  if (table_held_) device_step_->clear_table_gradients();
  write_next_ = true;
  stale_ = false;
}

void TrainState::clear_zero_ranges() {
  Backend& be = model_.backend();
  for (const auto& [b, e] : zero_ranges_) {
    Buf r = model_.view(grads_, b, e - b);
    be.zero(r);
  }
}

void TrainState::gradients_spent() {
  write_next_ = true;
  stale_ = true;
}

void TrainState::settle_grads() {
  if (stale_) zero_grads();
}

Buf& TrainState::buffer(const char* which) {
  if (std::strcmp(which, "grads") == 0) {
    settle_grads();
    return grads_;
  }
  if (std::strcmp(which, "m") == 0) return m_;
  if (std::strcmp(which, "v") == 0) return v_;
  if (std::strcmp(which, "master") == 0 && !master_.empty()) return master_;  // the master's low halves (CUDA)
  throw Error(std::string("unknown training buffer '") + which + "'");
}

void TrainState::get_buffer(const char* which, float* host) {
  Backend& be = model_.backend();
  if (std::strcmp(which, "params") == 0) return be.download(model_.param_buffer(), host);
  Buf& b = buffer(which);
  if (&b == &master_) return be.download_master(model_.param_buffer(), master_, host);
  if (&b != &grads_ || !table_held_) return be.download(b, host);
  // the table's rows from the device step, its padding zeros, then the rest
  device_step_->table_gradients_out(host + table_.offset);
  std::fill(host + table_.offset + table_.rows * table_.width, host + table_.offset + table_.span, 0.0f);
  be.download(grads_, host + table_.span);
}

void TrainState::set_buffer(const char* which, const float* host, size_t n) {
  if (std::strcmp(which, "params") == 0) throw Error("training buffer 'params' is read-only: a weight is written with setTensor");
  Buf& b = buffer(which);
  const size_t expected = &b == &grads_ ? size() : b.numel;
  if (n != expected) throw Error("training buffer size mismatch: expected " + std::to_string(expected) + ", got " + std::to_string(n));
  Backend& be = model_.backend();
  if (&b == &master_) be.upload_master(model_.param_buffer(), master_, host, n, DType::F32);
  else if (&b == &grads_ && table_held_) {
    device_step_->table_gradients_in(host + table_.offset);
    be.upload(grads_, host + table_.span, grads_.numel, DType::F32);
  } else {
    be.upload(b, host, n, DType::F32);
  }
  if (device_step_ && (&b == &m_ || &b == &v_)) {
    // which of the table's rows now hold anything but +0 (a sign bit or a NaN counts)
    std::vector<uint8_t> nonzero(table_.rows);
    for (size_t r = 0; r < table_.rows; r++) {
      const float* row = host + table_.offset + r * table_.width;
      nonzero[r] = std::any_of(row, row + table_.width, [](float x) { return x != 0.0f || std::signbit(x); });
    }
    device_step_->moment_rows_written(nonzero);
  }
  if (&b == &grads_) {
    write_next_ = false;  // the next backward adds to these
    if (device_step_) device_step_->gradients_written();
  }
}

}  // namespace l2e
