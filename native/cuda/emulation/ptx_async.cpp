// cp.async of the emulation build (ptx_async.h gives the ISA sections and the model).
//
// State per CUDA thread of the running block: the copies issued since its last commit_group (not
// yet in a group) and its committed groups, oldest first. Blocks run one after another on an OS
// thread, so the state is per OS thread and is reset when a different block (index, grid and block
// shape, shared memory) first uses it; copies a finished block never waited for are dropped with it
// (their shared memory is gone).
#include "ptx_async.h"

#include <cstdio>
#include <cstring>
#include <deque>
#include <vector>

#include "device.h"

namespace l2e {
namespace emu {
namespace ptx {

namespace {

constexpr unsigned char kCopyPoison = 0xff;  // NaN in bf16 and f32

struct Copy {
  unsigned dst;
  int bytes, src_bytes;
  const void* src;
  unsigned char data[16];  // the source bytes read at issue, zero-filled past src-size
};
using Group = std::vector<Copy>;
struct ThreadQueue {
  Group open;                // issued, not yet committed
  std::deque<Group> groups;  // committed, oldest first
};
struct BlockState {
  unsigned key[9] = {~0u, ~0u, ~0u, 0, 0, 0, 0, 0, 0};  // block index, grid and block dimensions
  const void* smem = nullptr;
  std::vector<ThreadQueue> threads;
};
thread_local BlockState tl_block;

ThreadQueue& queue() {
  const ThreadCtx& c = ctx();
  BlockState& b = tl_block;
  const unsigned key[9] = {c.block_idx.x, c.block_idx.y, c.block_idx.z, c.grid_dim.x, c.grid_dim.y,
                           c.grid_dim.z,  c.block_dim.x, c.block_dim.y, c.block_dim.z};
  if (std::memcmp(key, b.key, sizeof(key)) != 0 || b.smem != dynamic_shared()) {
    std::memcpy(b.key, key, sizeof(key));
    b.smem = dynamic_shared();
    b.threads.assign(size_t(c.block_dim.x) * c.block_dim.y * c.block_dim.z, ThreadQueue{});
  }
  const size_t tid = (size_t(c.thread_idx.z) * c.block_dim.y + c.thread_idx.y) * c.block_dim.x + c.thread_idx.x;
  if (tid >= b.threads.size()) fail("cp.async: emulator state does not match the block");  // never expected
  return b.threads[tid];
}

// PTX ISA, "Asynchronous copy": "Once an asynchronous copy operation is initiated, modifying the source
// memory location or tensor descriptor or reading from the destination memory location before the
// asynchronous operation completes, exhibits undefined behavior." A source byte changed since the issue
// is a launch error; so is a destination byte that is no longer poison, and not what the copy writes
// there, when the copy lands: a store or another copy wrote it meanwhile, a write racing with this
// copy's (the ISA orders a cp.async's writes with nothing before its wait), so which one stays is
// unknown (a write of the very bytes the copy brings, such as two threads loading the same data, passes).
void land(const Group& g) {
  char* base = static_cast<char*>(dynamic_shared());
  for (const Copy& c : g) {
    for (int k = 0; k < c.bytes; k++)
      if (const unsigned char now = static_cast<unsigned char>(base[c.dst + unsigned(k)]); now != kCopyPoison && now != c.data[k]) {
        static thread_local char msg[256];  // no allocation: a failed fiber is never resumed to free it
        snprintf(msg, sizeof msg, "cp.async.wait_group: shared memory at offset %u, the destination of a cp.async in "
                 "flight, was written (by a store or another copy) before the copy completed", c.dst + unsigned(k));
        fail(msg);
      }
    if (c.src_bytes > 0 && std::memcmp(c.src, c.data, size_t(c.src_bytes)) != 0)
      fail("cp.async.wait_group: the source of a cp.async in flight was modified before the copy completed");
    std::memcpy(base + c.dst, c.data, size_t(c.bytes));
  }
}

}  // namespace

// "cp.async": cp-size is 4, 8 or 16 for .ca and 16 for .cg; src-size, when given, is at most
// cp-size, and the cp-size - src-size bytes after it are written as zeros. The copy is weak and
// asynchronous: it is complete only once a cp.async.wait_group / wait_all of the issuing thread
// (or an mbarrier, not modelled) says so. dst and src must be aligned to cp-size.
void cp_async(bool cg, unsigned dst, const void* src, int cp_size, int src_size) {
  if (cp_size != 4 && cp_size != 8 && cp_size != 16) fail("cp.async: cp-size must be 4, 8 or 16");
  if (cg && cp_size != 16) fail("cp.async.cg: cp-size must be 16");
  if (src_size < 0 || src_size > cp_size) fail("cp.async: src-size must lie in [0, cp-size]");
  if (dst % unsigned(cp_size) != 0 || reinterpret_cast<uintptr_t>(src) % uintptr_t(cp_size) != 0)
    fail("cp.async: address not aligned to cp-size");
  if (size_t(dst) + size_t(cp_size) > dynamic_shared_size())
    fail("cp.async: destination outside the block's shared memory");
  ThreadQueue& q = queue();
  // "cp.async.commit_group": "two or more cp.async operations within a cp.async-group copying data to the
  // same location results in undefined behavior"
  for (const Copy& o : q.open)
    if (dst < o.dst + unsigned(o.bytes) && o.dst < dst + unsigned(cp_size))
      fail("cp.async: two copies of one cp.async-group to the same shared memory");
  Copy c{dst, cp_size, src_size, src, {}};
  if (src_size > 0) std::memcpy(c.data, src, size_t(src_size));  // a bad source faults here, at issue
  q.open.push_back(c);
  std::memset(static_cast<char*>(dynamic_shared()) + dst, kCopyPoison, size_t(cp_size));  // until it lands
}

// "cp.async.commit_group": the thread's cp.async operations not yet in a group become one new
// cp.async-group (possibly empty).
void cp_async_commit_group() {
  ThreadQueue& q = queue();
  q.groups.push_back(std::move(q.open));
  q.open.clear();
}

// "cp.async.wait_group / cp.async.wait_all": wait_group N waits until at most the N most recent
// groups of the executing thread are pending and all prior ones are complete (N = 0: all committed
// groups). Copies not yet committed are not waited for. wait_all is commit_group then wait_group 0.
void cp_async_wait_group(int n) {
  if (n < 0) fail("cp.async.wait_group: N must be a non-negative constant");
  ThreadQueue& q = queue();
  while (q.groups.size() > size_t(n)) {
    land(q.groups.front());
    q.groups.pop_front();
  }
}

void cp_async_wait_all() {
  cp_async_commit_group();
  cp_async_wait_group(0);
}

}  // namespace ptx
}  // namespace emu
}  // namespace l2e
