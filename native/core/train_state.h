// The native half of a training step (TypeScript drives the loop; see DESIGN.md §2, GradCache):
//   1. forward_chunk() each chunk of the batch's texts (the B queries, then the B*G passages, cut in
//      order) to embeddings (keeping activations when the whole step fits in memory); the embeddings
//      stay on the backend;
//   2. loss_chunks() over the whole batch: the loss joins the pending loss and d loss / d embeddings
//      stay on the backend (infonce() is the same on host vectors, for tests);
//   3. backward_chunk() each chunk seeded by its slice of those gradients (re-running its forward
//      when its activations were not kept): the first after a step writes the gradients, the
//      others add to them;
//   4. step(): global-norm clipping, AdamW, the gradients spent (only Model::grad_zero_ranges()
//      zeroed: the next backward writes the rest), and the pending loss read back with the norm. On CUDA (core/device_step.h) nothing in 1-4 waits for the device but that read-back
//      (or take_loss(), when a caller wants each batch's loss).
// Gradients and AdamW moments are single buffers with the parameter buffer's layout, but for the
// embedding table's gradient where the backend's DeviceStep holds it apart (table_held_): then the
// gradient buffer starts after the table's span (Backend::holds_table_gradients).
#pragma once
#include <map>
#include <memory>
#include <vector>

#include "core/model.h"

namespace l2e {

struct OptimizerHyper {
  float lr = 2e-5f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  float max_grad_norm = 0.5f;  // <= 0: no clipping
  int step = 1;                // 1-based AdamW step (bias correction)
};

struct StepResult {
  double grad_norm = 0;  // before clipping
  bool skipped = false;  // non-finite gradient norm or pending loss: no update was made
  double loss = 0;       // the pending loss: sum of loss_chunks() losses since the last take_loss()
};

class TrainState {
 public:
  explicit TrainState(Model& m);
  ~TrainState();

  // Embeddings [B,P] of one chunk, kept on the backend for loss_chunks(); returned when `download`.
  // keep: hold its activations for backward_chunk(id).
  std::vector<float> forward_chunk(int id, const std::vector<int32_t>& ids, const std::vector<int32_t>& cu, bool keep,
                                   bool download = true);
  // Parameter gradients from d loss / d emb of chunk `id` (recomputing if not kept), written by the
  // first call after a step and added by the next ones:
  // d_emb from the host, or (nullptr) the chunk's slice of the gradients loss_chunks() left.
  void backward_chunk(int id, const std::vector<int32_t>& ids, const std::vector<int32_t>& cu,
                      const std::vector<float>* d_emb);
  // InfoNCE over the kept embeddings of `chunks`, whose rows end to end are the B queries, then the
  // B*G passages (a chunk may hold both: one chunk, one forward and one backward for a batch that
  // fits); the loss is added to the pending loss, d loss / d emb (times grad_scale) stay on the
  // backend for backward_chunk().
  void loss_chunks(const std::vector<int>& chunks, int B, int G, float temperature, bool in_batch, float grad_scale);
  double take_loss();  // reads back and clears the pending loss
  // InfoNCE on host-side embeddings (small): fills dq, dp, scores; returns the loss.
  float infonce(const std::vector<float>& q, const std::vector<float>& p, int B, int G, float temperature,
                bool in_batch, std::vector<float>& dq, std::vector<float>& dp, std::vector<float>& scores);
  StepResult step(const OptimizerHyper& h);
  void zero_grads();  // every gradient to zero (the next backward may write or add: the same)
  void release_chunks();  // the end of a step: every chunk's activations and embeddings freed

  // Optimizer moments and gradients to / from the host (checkpoints, tests).
  // "grads" | "m" | "v" | "master" (bf16 parameters only: the F32 master, joined) | "params" (the
  // weights as the forward reads them: on CUDA the master's bf16 half; read only)
  void get_buffer(const char* which, float* host);
  void set_buffer(const char* which, const float* host, size_t n);
  size_t size() const { return model_.num_params(); }

 private:
  struct Kept {
    Batch batch;
    Activations acts;
  };
  // Where a chunk's d loss / d emb rows lie after loss_chunks().
  struct GradSlice {
    Buf* grad;
    size_t row0, rows;
  };
  Buf& buffer(const char* which);
  double grad_norm();  // without a DeviceStep
  void free_kept(Kept& k);
  void clear_zero_ranges();  // zeros in zero_ranges_, where a writing backward adds
  void gradients_spent();    // after a step: the next backward writes, what it writes is stale now
  void settle_grads();       // before the gradients are read: stale values to zeros

  Model& model_;
  // master_: when the model's parameters are not F32 (CUDA keeps BF16 weights for the forward), the
  // U16 low halves of the F32 master weights whose other halves are those parameters
  // (core/master_halves.h); AdamW steps the master through both. Empty on the CPU, where AdamW
  // updates the F32 parameters directly.
  Buf grads_, m_, v_, master_;
  std::map<int, Kept> kept_;
  std::map<int, Buf> emb_;           // chunk embeddings [rows, P] F32, until release_chunks()
  std::map<int, GradSlice> dslice_;  // into demb_
  Buf demb_;                         // d loss / d emb of the batch [B + B*G, P] F32
  std::vector<AdamwTensor> tensors_;  // the parameters, with the no-decay set decided once
  std::vector<std::pair<size_t, size_t>> zero_ranges_;  // Model::grad_zero_ranges(), in grads_' elements
  ScatterTable table_;       // Model::grad_scatter_table()
  bool table_held_ = false;  // its gradient is the DeviceStep's, not in grads_
  bool write_next_ = true;  // the next backward writes the gradients (they hold none) instead of adding
  bool stale_ = false;      // outside zero_ranges_ grads_ holds an earlier step's gradients, not zeros
  std::unique_ptr<DeviceStep> device_step_;  // nullptr: step through the op table (L2E_CPU_STEP=ops)
  double pending_loss_ = 0;                  // without a DeviceStep
};

}  // namespace l2e
