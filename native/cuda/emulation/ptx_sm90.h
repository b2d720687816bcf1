// CUDA emulation build: the sm_90a instructions of the Hopper attention kernel (ptx_sm90.cpp), written
// from the PTX ISA (section names beside each):
//   mbarrier.init / arrive / arrive.expect_tx / expect_tx / complete_tx / test_wait / try_wait with
//     .parity  ("Parallel Synchronization and Communication Instructions: mbarrier": phases, pending
//     arrival count, tx-count; a phase completes when both reach zero)
//   cp.async.bulk.tensor.{2d,3d,..}.shared::cluster.global.tile.mbarrier::complete_tx::bytes
//     ("Data Movement and Conversion Instructions: cp.async.bulk.tensor"; the tensor map: emulation/cuda.h)
//   cp.reduce.async.bulk.tensor.{2d,3d,..}.global.shared::cta.add.tile.bulk_group on .f32 tensors
//     ("cp.reduce.async.bulk.tensor"), cp.async.bulk.commit_group, cp.async.bulk.wait_group[.read]
//     ("cp.async.bulk.commit_group", "cp.async.bulk.wait_group": bulk async-groups)
//   wgmma.mma_async.sync.aligned.m64nNk16.f32.bf16.bf16, A from shared memory or registers, B from
//     shared memory ("Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions": register
//     fragments, "Matrix Descriptor Format", "Shared Memory Matrix Layout" with the swizzle modes)
//   wgmma.fence / wgmma.commit_group / wgmma.wait_group N ("wgmma.wait_group": "Operand N is an integer
//     constant", with no upper bound: any N >= 0, and with N or fewer groups pending nothing completes;
//     a negative N, or lanes of a warp (.sync) or warps of a warpgroup (.aligned) with different N, fail
//     the launch)
//   fence.proxy.async.shared::cta ("Membar/Fence Instructions": a bidirectional generic-async proxy fence),
//     fence.mbarrier_init.release.cluster (mbarrier initialisations before their use by the async proxy)
//   setmaxnreg.{inc,dec}.sync.aligned.u32 ("Miscellaneous Instructions: setmaxnreg": the count an
//     immediate in [24, 256], a multiple of 8; executed by all warps of a warpgroup, .sync.aligned: by
//     every lane of the warp with the same count). Registers are not modelled: only these rules are checked.
//
// Asynchrony is made observable, so that a kernel missing a wait fails in emulation:
//   - a bulk tensor copy is queued on its mbarrier and lands (and completes its bytes) only when some
//     thread waits on that mbarrier; until then its destination holds NaN (poison) in both proxies' views,
//     and a byte written there meanwhile fails the launch when the copy lands (under the "warps" schedule,
//     runtime.cpp, it lands when issued instead: a buffer still being read when the copy into it is issued
//     then holds the new bytes);
//   - wgmma.mma_async reads its shared-memory operands at issue and poisons its accumulator registers
//     with NaN; the products are written back only by the wgmma.wait_group that covers them, which
//     fails the launch if the thread wrote those registers meanwhile; register A operands read as NaN
//     until then, and a write to them fails the launch too;
//   - wgmma.mma_async without a wgmma.fence since the warp's last wgmma.wait_group is a launch error;
//   - the async proxy has a view of shared memory of its own (ptx_sm90.cpp, "proxies"): a wgmma operand
//     written by st.shared or cp.async with no fence.proxy.async before the wgmma is a launch error, and
//     so is an operand written (by any proxy) while its wgmma is in flight, before the wait that covers it;
//     a bulk tensor copy on an mbarrier initialised with no fence.mbarrier_init (or fence.proxy.async)
//     since is a launch error too;
//   - a bulk tensor reduction reads its source at issue (through the async proxy's view) and adds into
//     global memory only at the cp.async.bulk.wait_group that covers it, which fails the launch if the
//     source was written meanwhile; groups a block never waits for are dropped with the block.
//   - an arrive-on in a phase of an mbarrier whose previous phase no test_wait/try_wait has seen complete
//     is a launch error ("Phase of the mbarrier object").
// More lenient than the ISA (undefined behaviour that passes here; a review must catch it):
//   - a register written between wgmma.fence and the wgmma.mma_async that reads it (the fence has no
//     operands to compare against);
//   - fence.proxy.async and fence.mbarrier_init by one thread publish every thread's writes ("proxies");
//   - setmaxnreg checks its count and its warpgroup, not the block's register pool;
//   - cp.async.bulk.wait_group.read completes the global writes as well as the reads;
//   - products sum in one fixed order (the ISA leaves the order and rounding of mma/wgmma unspecified),
//     and blocks run one after another (no races between blocks).
// Shared-memory addresses are offsets in the block's dynamic shared memory (__cvta_generic_to_shared).
#pragma once
#include <cstdint>

struct CUtensorMap;

namespace l2e {
namespace emu {
namespace ptx {

// ---- mbarrier (an 8-byte object in shared memory) ----
void mbarrier_init(unsigned bar, unsigned count);
void fence_mbarrier_init();  // fence.mbarrier_init.release.cluster
void mbarrier_arrive(unsigned bar);
void mbarrier_arrive_expect_tx(unsigned bar, unsigned tx_bytes);
void mbarrier_expect_tx(unsigned bar, unsigned tx_bytes);
void mbarrier_complete_tx(unsigned bar, unsigned tx_bytes);
// true once the phase of parity `parity` has completed; false lets other threads run first
bool mbarrier_test_wait_parity(unsigned bar, unsigned parity);
bool mbarrier_try_wait_parity(unsigned bar, unsigned parity);

// ---- TMA: a box of the tensor at `coords` (rank of the map) into shared memory at `dst` ----
void cp_async_bulk_tensor_g2s(unsigned dst, const CUtensorMap* map, unsigned bar, const int32_t* coords);

// ---- TMA reduction: global box at `coords` += the box at `src` in shared memory (.add, .f32 here),
// completing in bulk async-groups: commit_group closes the thread's open ones into a group;
// wait_group(N, read) waits until at most the N most recent groups are pending (read: their source reads) ----
void cp_reduce_async_bulk_tensor_add_s2g(const CUtensorMap* map, const int32_t* coords, unsigned src);
void cp_async_bulk_commit_group();
void cp_async_bulk_wait_group(int pending, bool read);

// ---- wgmma (warpgroup: 4 consecutive warps, warp w % 4 owning rows 16 (w % 4) .. + 15 of D) ----
void wgmma_fence();
void wgmma_commit_group();
// wait_group(N): every committed group but the N most recent completes (N >= 0; no upper bound)
void wgmma_wait_group(int pending);
// D (this thread's n/2 fp32 registers) = A B + (scale_d ? D : 0); A 64x16, B 16xn (8 <= n <= 256,
// n % 8 == 0). trans = 1: the operand is MN-major in shared memory (imm-trans-a / imm-trans-b).
void wgmma_m64k16_bf16_ss(float* d, int n, uint64_t desc_a, uint64_t desc_b, int scale_d, int trans_a, int trans_b);
// A from registers: this thread's 4 .b32 registers, the mma.m16n8k16 A fragment of its warp's 16 rows.
// Until the wgmma.wait_group that completes it they hold NaNs (reading or writing them then is
// undefined in the PTX ISA): `a` must be the thread's own array, in scope until that wait, as
// registers are. Products in flight may share one.
void wgmma_m64k16_bf16_rs(float* d, int n, uint32_t (&a)[4], uint64_t desc_b, int scale_d, int trans_b);

// ---- fence.proxy.async: the generic proxy's shared-memory writes so far become the async proxy's ----
void fence_proxy_async();

// ---- setmaxnreg: the warpgroup's per-thread register budget (inc = true: .inc, else .dec) ----
void setmaxnreg(unsigned count, bool inc);

}  // namespace ptx
}  // namespace emu
}  // namespace l2e
