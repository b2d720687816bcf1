// The embedding table's gradient held apart (kernels.h, "table_rows.cu"): a backward's scatter adds
// only into the rows its batch names, so the step keeps those rows alone, each in a row ("slot") of a
// [capacity, width] buffer given when the row is first named, instead of the whole [rows, width]
// table (131M floats, 0.49 GiB, at the 600M and 1B shapes, where a batch of T tokens names at most T
// rows). Per row of the table:
//   slots[r]:    its slot, or -1 (its gradient is zeros);
//   kRowGrad:    it has a slot;
//   kRowMoments: its AdamW moments may be nonzero (it has had a gradient, or the host wrote them).
// Invariants: slots below *used hold their row's gradient, row_of[slot] names that row, and every
// slot at or after *used is zeros, so a slot just given starts from zero for the scatter to add into.
// The step's norm reads a row through its slot (or nothing: a square of zero adds nothing), its AdamW
// without decay touches no row with neither flag (the update leaves such a row bit for bit:
// optimizer.cu, untouched4), and clearing the gradients after a step zeroes the slots in use.
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

// atomicCAS picks one thread for each new row (CUDA C++ Programming Guide, atomic functions: the old
// value is returned, and the new one stored only when the old equals `compare`); the others see -2
// or the slot and leave the row to it. Every thread of the grid is done before map_ids_kernel reads.
__global__ void assign_slots_kernel(uint8_t* flags, int32_t* slots, int32_t* row_of, int32_t* used,
                                    const int32_t* ids, int n) {
  L2E_GRID_STRIDE(i, size_t(n)) {
    const int32_t r = ids[i];
    if (atomicCAS(slots + r, -1, -2) != -1) continue;
    const int32_t slot = atomicAdd(used, 1);
    row_of[slot] = r;
    slots[r] = slot;
    flags[r] = uint8_t(flags[r] | kRowGrad);  // this thread alone writes row r's flag in this launch
  }
}

__global__ void map_ids_kernel(const int32_t* slots, const int32_t* ids, int n, int32_t* mapped) {
  L2E_GRID_STRIDE(i, size_t(n)) mapped[i] = slots[ids[i]];
}

__global__ void set_row_flags_kernel(uint8_t* flags, size_t rows, const uint8_t* nonzero, uint8_t flag) {
  L2E_GRID_STRIDE(r, rows) if (nonzero[r]) flags[r] = uint8_t(flags[r] | flag);
}

// A block per slot at a time.
__global__ void clear_slots_kernel(float* slab, int32_t* slots, const int32_t* row_of, uint8_t* flags,
                                   const int32_t* used, size_t bound, uint32_t width) {
  const size_t in_use = size_t(*used) < bound ? size_t(*used) : bound;
  for (size_t s = blockIdx.x; s < in_use; s += gridDim.x) {
    if (threadIdx.x == 0) {
      const int32_t r = row_of[s];
      slots[r] = -1;
      flags[r] = kRowMoments;
    }
    float4* row = reinterpret_cast<float4*>(slab + s * width);  // width % 4 == 0, slab 16-byte aligned
    for (uint32_t j = threadIdx.x; j < width / 4; j += blockDim.x) row[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
}

}  // namespace

void assign_slots(uint8_t* flags, int32_t* slots, int32_t* row_of, int32_t* used, const int32_t* ids, int n,
                  int32_t* mapped, cudaStream_t s) {
  if (n <= 0) return;
  L2E_LAUNCH(assign_slots_kernel, grid_for(size_t(n), 256), 256, 0, s)(flags, slots, row_of, used, ids, n);
  check_launch("embedding rows: assign slots");
  L2E_LAUNCH(map_ids_kernel, grid_for(size_t(n), 256), 256, 0, s)(slots, ids, n, mapped);
  check_launch("embedding rows: map ids");
}

void set_row_flags(uint8_t* flags, size_t rows, const uint8_t* nonzero, uint8_t flag, cudaStream_t s) {
  if (rows == 0) return;
  L2E_LAUNCH(set_row_flags_kernel, grid_for(rows, 256), 256, 0, s)(flags, rows, nonzero, flag);
  check_launch("embedding rows: set");
}

void clear_slots(float* slab, int32_t* slots, const int32_t* row_of, uint8_t* flags, int32_t* used, size_t bound,
                 uint32_t width, cudaStream_t s) {
  if (bound > 0) {
    L2E_LAUNCH(clear_slots_kernel, grid_for(bound, 1, 1024), 256, 0, s)(slab, slots, row_of, flags, used, bound, width);
    check_launch("embedding rows: clear");
  }
  L2E_CUDA_CHECK(cudaMemsetAsync(used, 0, sizeof(int32_t), s));
}

}  // namespace cuda
}  // namespace l2e
