// PTX instructions of the emulation build (see ptx.h for the ISA sections). Every lane publishes its
// operands, the warp meets (a missing lane or a partial mask is an error), and each lane computes
// what the ISA says its destination registers hold.
#include "ptx.h"

#include <cmath>
#include <cstring>

#include "census.h"
#include "device.h"

namespace l2e {
namespace emu {
namespace ptx {

// "Matrix Fragments for mma.m16n8k16 with floating point type" (.bf16), with groupID = laneid >> 2
// and threadID_in_group = laneid % 4; each .b32 register holds two consecutive elements a_i, a_i+1:
//   A: a_i, i = 0..7:   row = groupID for i in {0,1,4,5}, groupID + 8 otherwise;
//                       col = 2 threadID_in_group + (i & 1), + 8 for i >= 4
//   B: b_i, i = 0..3:   row (k) = 2 threadID_in_group + (i & 1), + 8 for i >= 2;  col (n) = groupID
//   C, D: c_i, i = 0..3: row = groupID, + 8 for i >= 2;  col = 2 threadID_in_group + (i & 1)
// The inverse maps: A(r, k) is in lane (r % 8) * 4 + (k % 8) / 2, element 4[k >= 8] + 2[r >= 8] + k % 2;
// B(k, n) is in lane n * 4 + (k % 8) / 2, element 2[k >= 8] + k % 2.
namespace {

// A and B of one warp's mma, decoded once per exchange by the first lane to continue.
struct Decoded {
  uint64_t gen;  // warp_generation() it was decoded at (~0 in fresh scratch: none)
  float A[16][16], B[16][8];
};

// The emulator's own arithmetic (exactly checked by the mma self-test) is not instrumented in the
// sanitizer build: instrumented, it was a third of a sanitized GPU run. The kernels that call it
// stay instrumented. (Nothing here is inlined from instrumented code: GCC would refuse.)
#if defined(__SANITIZE_ADDRESS__)
#define L2E_EMU_UNINSTRUMENTED __attribute__((no_sanitize_address, no_sanitize_undefined))
#else
#define L2E_EMU_UNINSTRUMENTED
#endif

// Element `e` (0 = low 16 bits) of .b32 register `i` of `lane`, a bf16, as f32 (its upper 16 bits).
L2E_EMU_UNINSTRUMENTED float element(const WarpSlot* all, unsigned lane, int i, int e) {
  uint32_t x;
  std::memcpy(&x, reinterpret_cast<const char*>(all[lane].v) + 4 * i, 4);
  const uint32_t bits = (e ? x >> 16 : x & 0xffffu) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

L2E_EMU_UNINSTRUMENTED void decode(Decoded& dec, const WarpSlot* all) {
  for (int r = 0; r < 16; r++)
    for (int k = 0; k < 16; k++) {
      const int i = (k >= 8 ? 4 : 0) + (r >= 8 ? 2 : 0) + (k & 1);
      dec.A[r][k] = element(all, unsigned((r % 8) * 4 + (k % 8) / 2), i / 2, i & 1);
    }
  for (int k = 0; k < 16; k++)
    for (int n = 0; n < 8; n++) {
      const int i = (k >= 8 ? 2 : 0) + (k & 1);
      dec.B[k][n] = element(all, unsigned(n * 4 + (k % 8) / 2), 4 + i / 2, i & 1);
    }
}

L2E_EMU_UNINSTRUMENTED void multiply(const Decoded& dec, unsigned lane, const float (&c)[4], float (&d)[4]) {
  const int g = int(lane >> 2), t = int(lane & 3);
  float out[4];
  for (int i = 0; i < 4; i++) {
    const int r = g + (i >= 2 ? 8 : 0), n = 2 * t + (i & 1);
    float acc = 0.0f;  // bf16 x bf16 products are exact in fp32; the sum is fp32
    for (int k = 0; k < 16; k++) acc += dec.A[r][k] * dec.B[k][n];
    out[i] = c[i] + acc;
  }
  for (int i = 0; i < 4; i++) d[i] = out[i];
}

}  // namespace

void mma_m16n8k16_bf16_f32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  WarpSlot in{};
  uint32_t words[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
  std::memcpy(in.v, words, sizeof(words));
  const WarpSlot* all = warp_exchange(0xffffffffu, "mma.sync.m16n8k16", in);
  Decoded& dec = *static_cast<Decoded*>(warp_scratch(sizeof(Decoded)));
  const uint64_t gen = warp_generation();
  if (dec.gen != gen) {  // the warp's first lane here: decodes, and counts the instruction once
    decode(dec, all);
    dec.gen = gen;
    census_mma(2 * 16 * 8 * 16);
  }
  multiply(dec, lane_id(), c, d);
}

// "Warp-level matrix load instruction: ldmatrix", .m8n8 .b16: each matrix is 8 rows of 8 16-bit
// elements, a row being 16 contiguous bytes at an address supplied by one thread: threads 0-7 give
// the rows of matrix 0 (.x1), 8-15 of matrix 1 (.x2), 16-23 and 24-31 of matrices 2 and 3 (.x4).
// Destination register m of each thread holds two elements of matrix m: row = laneid >> 2 and
// columns 2 (laneid % 4) + {0, 1}; with .trans the matrix is read column-wise, i.e. rows
// 2 (laneid % 4) + {0, 1} of column laneid >> 2. Addresses must be 16-byte aligned.
void ldmatrix_m8n8_b16(uint32_t* d, int count, bool trans, unsigned addr) {
  if (count != 1 && count != 2 && count != 4) fail("ldmatrix: .num must be .x1, .x2 or .x4");
  WarpSlot in{};
  in.v[0] = addr;
  const WarpSlot* all = warp_exchange(0xffffffffu, trans ? "ldmatrix.trans" : "ldmatrix", in);
  const char* base = static_cast<const char*>(dynamic_shared());
  const size_t size = dynamic_shared_size();
  const unsigned lane = lane_id();
  for (int m = 0; m < count; m++) {
    auto elem = [&](int row, int col) {
      const uint64_t row_addr = all[8 * m + row].v[0];
      if (row_addr % 16 != 0) fail("ldmatrix: row address not 16-byte aligned");
      if (row_addr + 16 > size) fail("ldmatrix: row address outside the block's shared memory");
      uint16_t x;
      std::memcpy(&x, base + row_addr + 2 * col, 2);
      return uint32_t(x);
    };
    const int g = int(lane >> 2), t = int(lane & 3);
    const uint32_t lo = trans ? elem(2 * t, g) : elem(g, 2 * t);
    const uint32_t hi = trans ? elem(2 * t + 1, g) : elem(g, 2 * t + 1);
    d[m] = lo | (hi << 16);
  }
  if (lane == 0)  // once per warp instruction
    for (int m = 0; m < count; m++) {
      uint64_t rows[8];
      for (int r = 0; r < 8; r++) rows[r] = all[8 * m + r].v[0];
      census_ldmatrix(rows);
    }
}

float ex2_approx_ftz_f32(float a) {
  if (std::fpclassify(a) == FP_SUBNORMAL) a = std::copysign(0.0f, a);
  const float r = ex2_approx(a);  // within the ISA's 2 ulp (approx_math.h)
  return std::fpclassify(r) == FP_SUBNORMAL ? 0.0f : r;  // 2^a >= 0: the flushed result is +0
}

}  // namespace ptx
}  // namespace emu
}  // namespace l2e
