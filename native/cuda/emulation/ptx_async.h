// CUDA emulation build: the non-bulk asynchronous copy of sm_80 (ptx_async.cpp), written from the
// PTX ISA, section "Data Movement and Conversion Instructions: Non-bulk copy":
//   cp.async.{ca,cg}.shared.global [dst], [src], cp-size{, src-size}   ("cp.async")
//   cp.async.commit_group                                               ("cp.async.commit_group")
//   cp.async.wait_group N;  cp.async.wait_all                           ("cp.async.wait_group /
//                                                                         cp.async.wait_all")
// The asynchrony is modelled adversarially: a copy reads its source at issue but lands in shared
// memory only when a wait of the issuing thread forces it (the latest point the ISA allows), and its
// destination is poisoned (0xff bytes: NaN in bf16 and f32) at issue. So a kernel that reads a
// stage before waiting for it, or refills a stage other threads still read, computes NaN instead of
// passing by luck. A destination written or a source modified while the copy is in flight, and two
// copies of one group to the same bytes (undefined in the ISA), are launch errors.
#pragma once
#include <cstdint>

namespace l2e {
namespace emu {
namespace ptx {

// cp.async: cg selects .cg (cp_size must be 16) over .ca (4, 8 or 16). dst is the shared-window
// address (cvta), both addresses aligned to cp_size; src_size (0..cp_size) bytes are read from src,
// the rest of the cp_size bytes are zero-filled (the ISA's src-size operand; cp_size when omitted).
void cp_async(bool cg, unsigned dst, const void* src, int cp_size, int src_size);
void cp_async_commit_group();
void cp_async_wait_group(int n);  // all but the n most recent committed groups of this thread complete
void cp_async_wait_all();         // = commit_group; wait_group 0

}  // namespace ptx
}  // namespace emu
}  // namespace l2e
