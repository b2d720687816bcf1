// The op table: every backend (cpu/, cuda/) implements these, and the Llama model (core/model*.cpp)
// is written once over them. Shapes are row-major; T = tokens of a packed batch (sequences
// concatenated, no padding), B = sequences, cu_seqlens[B+1] their cumulative offsets, H = hidden,
// nh / nkv = query / key-value heads, hd = head dim, I = MLP width, P = embedding width.
//
// Activation buffers use the backend's activation dtype (F32 on the CPU, BF16 on CUDA); norms'
// reciprocal std, softmax log-sum-exp, pooled and normalised embeddings (and their gradients),
// losses, weight gradients and optimizer state are always F32.
// "accumulate" arguments add into the output instead of overwriting it (gradients of shared inputs).
// The op table itself is listed once, in core/ops.def.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/device_step.h"
#include "core/tensor.h"

namespace l2e {

// A packed batch as the ops see it (all buffers on the backend's device).
struct Batch {
  int B = 0;          // sequences
  int T = 0;          // total tokens
  Buf ids;            // I32 [T]
  Buf positions;      // I32 [T], restart at 0 per sequence
  Buf cu_seqlens;     // I32 [B+1]
  // The attention tile schedule, computed once per batch on the host (attention_tiles): I32
  // [2 * num_tiles], (sequence, first row) of each tile of kAttentionTileRows rows. Used by the CUDA
  // flash kernels (one block per tile and head); the CPU ignores it.
  Buf tiles;
  int num_tiles = 0;
  // sum of len^2 / 2 over the sequences: a head's (query, key) pairs under the causal mask as FLOP
  // counts take them (core/op_flops.h); set with the tiles (attention_schedule)
  double causal_pairs = 0;
  // (first position, count) of each run of tokens holding the model's pad id (ModelConfig::pad_id), on
  // the host: the backward adds nothing from them to the embedding table (core/model_backward.cpp)
  std::vector<std::pair<int, int>> pad_runs;
};

constexpr int kAttentionTileRows = 64;
// Tiles of kAttentionTileRows rows covering every sequence of cu [B+1]: per sequence its last (most
// keys under the causal mask, so the longest-running) tile first. Pairs (sequence, first row).
std::vector<int32_t> attention_tiles(const int32_t* cu, int B);
// The host-side schedule of a batch of sequences cu [B+1]: sets bt.num_tiles and bt.causal_pairs and
// returns the tiles (attention_tiles) for the caller to upload into bt.tiles.
std::vector<int32_t> attention_schedule(Batch& bt, const int32_t* cu, int B);

enum class Pooling : int { Mean = 0, Cls = 1 };

struct LowpMatrix;  // a weight matrix held in bf16 / int8 for inference (core/lowp.h)

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual DType act_dtype() const = 0;
  // dtype of the model's parameter buffer (CPU: F32; CUDA: BF16, trained through F32 master weights
  // held as halves: the BF16 parameters themselves and TrainState's U16 low halves, core/master_halves.h).
  virtual DType param_dtype() const { return DType::F32; }

  // ---- memory ----
  virtual Buf alloc(size_t numel, DType dtype) = 0;  // contents undefined
  virtual void free(Buf& b) = 0;                     // sets b.ptr = nullptr
  virtual void zero(Buf& b) = 0;
  // Host <-> backend copies; host data is always F32 / I32 and converted to b.dtype.
  virtual void upload(Buf& dst, const void* host, size_t numel, DType host_dtype) = 0;
  virtual void download(const Buf& src, float* host) = 0;  // src F32/BF16/F16 -> float
  virtual void copy(Buf& dst, const Buf& src) = 0;         // same numel, converts dtype
  virtual void synchronize() {}
  // Freed memory kept for reuse while a model trains (the CPU's, cpu/host_pool.h; a CUDA backend's pool
  // keeps it always): hold_freed_memory(true) from the training state's start, false at its end;
  // held_free_bytes() is memory so kept, which a size check counts as available.
  virtual void hold_freed_memory(bool on) { (void)on; }
  virtual size_t held_free_bytes() const { return 0; }
  // F32 master weights as halves (core/master_halves.h; a backend whose param_dtype() is not F32):
  // host values (F32, or BF16/F16 bits) into the BF16 parameters `hi` and the U16 low halves `lo`
  // of the same numel, and the exact F32 values back.
  virtual void upload_master(Buf& hi, Buf& lo, const void* host, size_t numel, DType host_dtype) {
    (void)hi, (void)lo, (void)host, (void)numel, (void)host_dtype;
    throw Error(name() + " backend: its parameters are F32, it keeps no master halves");
  }
  virtual void download_master(const Buf& hi, const Buf& lo, float* host) {
    (void)hi, (void)lo, (void)host;
    throw Error(name() + " backend: its parameters are F32, it keeps no master halves");
  }

  // The training step on the device (core/device_step.h) over the flat buffers w (F32 weights, or
  // with `shadow` the U16 low halves of the master), g, m, v and the BF16 parameters `shadow` (the
  // master's other half, core/master_halves.h; nullptr: none), cut into `tensors`, zeroing the
  // gradients in `zero_ranges` ([begin, end) elements of g) after each step; nullptr where the
  // backend steps through the ops (the CPU under L2E_CPU_STEP=ops, cpu/cpu_step.h). When holds_table_gradients(table), the step keeps the
  // table's gradient itself, only the rows a step's backward adds into (DeviceStep::rows_scattered),
  // and g holds the parameters after it (the layout's first tensor): g's element i is the layout's span + i.
  virtual bool holds_table_gradients(const ScatterTable& table) const {
    (void)table;
    return false;
  }
  virtual std::unique_ptr<DeviceStep> make_device_step(Buf& w, Buf& g, Buf& m, Buf& v, Buf* shadow,
                                                       const std::vector<AdamwTensor>& tensors,
                                                       const std::vector<std::pair<size_t, size_t>>& zero_ranges,
                                                       const ScatterTable& table) {
    (void)w, (void)g, (void)m, (void)v, (void)shadow, (void)tensors, (void)zero_ranges, (void)table;
    return nullptr;
  }

  // ---- the ops (core/ops.def: each op's signature and contract, listed once) ----
#define L2E_OP(name, ret, params, args) virtual ret name params = 0;
#include "core/ops.def"

  // ---- fp32 weights pre-packed for inference (the CPU's GEMM layout, cpu/gemm.h) ----
  // Not ops: no gradient, the same numbers as linear. A backend without them keeps nn.Linear's layout.
  virtual bool packs_weights() const { return false; }
  // W[N,K] into (pack) or back out of (!pack) the pre-packed layout, in place.
  virtual void pack_weights(Buf& W, int N, int K, bool pack) {
    (void)W, (void)N, (void)K, (void)pack;
    throw Error(name() + " backend: weights cannot be pre-packed");
  }
  // linear with W pre-packed.
  virtual void linear_packed(const Buf& x, const Buf& W, const Buf* bias, int T, int K, int N, Buf& y) {
    (void)x, (void)W, (void)bias, (void)T, (void)K, (void)N, (void)y;
    throw Error(name() + " backend: weights cannot be pre-packed");
  }
};

struct CudaStatus {
  bool compiled = false;  // this binary has the CUDA backend
  bool usable = false;    // a GPU, its driver and cuBLAS were found
  bool emulated = false;  // the CUDA emulation build: kernels run on the CPU (native/cuda/emulation)
  std::string reason;     // why not usable (empty when usable)
  int devices = 0;        // CUDA devices seen
  // the first device, when usable
  std::string name;
  std::string compute_capability;  // "major.minor"
  size_t free_bytes = 0, total_bytes = 0;
};
// Probes the CUDA backend without creating one (cheap; used to choose the CUDA prebuilt at load time,
// by make_cuda_backend, and by the cudaStatus() binding: the one answer to "is CUDA usable here").
CudaStatus cuda_status();

// cudaMalloc calls made so far by the CUDA backends' caching pools (0 without CUDA): the GPU bench
// counts those inside timed steps, where a warm cache makes none.
uint64_t cuda_pool_malloc_count();
// The most bytes the CUDA backends' pools have held in cudaMalloc'd segments at once (0 without CUDA);
// reset: the peak starts again from the bytes held now (the value returned is the one before).
uint64_t cuda_pool_peak_reserved(bool reset);
// The same for the bytes in blocks the pools have handed out and not had back (the live tensors; what
// torch.cuda.max_memory_allocated() counts of PyTorch's caching allocator): its peak, reset alike.
uint64_t cuda_pool_peak_live(bool reset);

std::unique_ptr<Backend> make_cpu_backend();
// Throws Error with a clear message when the CUDA backend is not compiled in or no GPU is usable.
// attention_kernel: "auto", "simple", "sm80" or "sm90" (cuda/kernels.h); empty: $L2E_CUDA_ATTENTION or auto.
// attention_variant: a tile variant of the sm80 kernels, for measurement (cuda_attention_variants());
// empty: the default shapes.
std::unique_ptr<Backend> make_cuda_backend(const std::string& attention_kernel = "",
                                           const std::string& attention_variant = "");
// The sm80 attention kernels' tile variants, "fwd:<name>" then "bwd:<name>", each one's default first
// (cuda/kernels.h); empty without the CUDA backend.
std::vector<std::string> cuda_attention_variants();

}  // namespace l2e
