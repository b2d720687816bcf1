// Row flags of the embedding table's gradient (kernels.h, "table_rows.cu"): one byte a row,
//   kRowGrad:    the row's gradient may be nonzero (a backward's scatter adds into it, or the host wrote it);
//   kRowMoments: its AdamW moments may be nonzero (it has had a gradient, or the host wrote them).
// Invariant: a row without kRowGrad holds zeros, one without either flag also +0 moments. So the step's
// norm need not read the first kind (a square of zero adds nothing) and its AdamW without decay need not
// touch the second (the update leaves such a row bit for bit: optimizer.cu, untouched4), and clearing
// the gradients after a step means zeroing the kRowGrad rows only: a batch of T tokens names at most T
// of the table's rows, against every row the whole table's memset wrote.
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

__global__ void mark_rows_kernel(uint8_t* flags, size_t rows, const int32_t* ids, int n) {
  L2E_GRID_STRIDE(i, size_t(n)) {
    const int32_t r = ids[i];
    if (r >= 0 && size_t(r) < rows) flags[r] |= kRowGrad;  // same value from every writer: no race to lose
  }
}

__global__ void set_rows_kernel(uint8_t* flags, size_t rows, const uint8_t* nonzero, bool gradients) {
  L2E_GRID_STRIDE(r, rows) {
    const uint8_t f = flags[r];
    if (gradients) flags[r] = uint8_t((f & kRowMoments) | (nonzero[r] ? kRowGrad : 0));
    else if (nonzero[r]) flags[r] = uint8_t(f | kRowMoments);
  }
}

// A block per row at a time: all its threads read the flag before thread 0 rewrites it.
__global__ void clear_rows_kernel(float* table, uint8_t* flags, size_t rows, uint32_t width) {
  for (size_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const uint8_t f = flags[r];
    __syncthreads();
    if (!(f & kRowGrad)) continue;  // the same f in every thread of the block
    if (threadIdx.x == 0) flags[r] = kRowMoments;
    float4* row = reinterpret_cast<float4*>(table + r * width);  // width % 4 == 0, table 16-byte aligned
    for (uint32_t j = threadIdx.x; j < width / 4; j += blockDim.x) row[j] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  }
}

}  // namespace

void mark_rows(uint8_t* flags, size_t rows, const int32_t* ids, int n, cudaStream_t s) {
  if (n <= 0 || rows == 0) return;
  L2E_LAUNCH(mark_rows_kernel, grid_for(size_t(n), 256), 256, 0, s)(flags, rows, ids, n);
  check_launch("embedding rows: mark");
}

void set_rows(uint8_t* flags, size_t rows, const uint8_t* nonzero, bool gradients, cudaStream_t s) {
  if (rows == 0) return;
  L2E_LAUNCH(set_rows_kernel, grid_for(rows, 256), 256, 0, s)(flags, rows, nonzero, gradients);
  check_launch("embedding rows: set");
}

void clear_rows(float* table, uint8_t* flags, size_t rows, uint32_t width, cudaStream_t s) {
  if (rows == 0) return;
  L2E_LAUNCH(clear_rows_kernel, grid_for(rows, 1, 1024), 256, 0, s)(table, flags, rows, width);
  check_launch("embedding rows: clear");
}

}  // namespace cuda
}  // namespace l2e
