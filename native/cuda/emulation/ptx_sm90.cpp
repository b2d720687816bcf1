// The sm_90a instructions of the emulation build (ptx_sm90.h lists them with their PTX ISA sections).
#include "ptx_sm90.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "cuda.h"
#include "cuda_bf16.h"
#include <cstdarg>
#include <cstdio>

#include "census.h"
#include "device.h"

namespace l2e {
namespace emu {
namespace ptx {

namespace {

// The message is formatted into a per-thread buffer, never a std::string temporary: a fiber that fails is
// never resumed, so what it allocated on the way (the temporary) would never be freed (LeakSanitizer).
[[noreturn]] __attribute__((format(printf, 1, 2))) void failf(const char* fmt, ...) {
  static thread_local char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fail(msg);
}

// The bits at p, by a plain load: std::memcmp on 2 or 4 bytes is a library call per element, which the
// sanitizer build intercepts.
template <typename T>
T bits_at(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

char* smem_at(unsigned addr, size_t bytes, const char* op) {
  if (size_t(addr) + bytes > dynamic_shared_size()) failf("%s: address outside the block's shared memory", op);
  return static_cast<char*>(dynamic_shared()) + addr;
}

// ================= proxies =================
// The memory model's proxies (PTX ISA "Proxies"; for wgmma "Async Proxy"): wgmma.mma_async reads its
// shared-memory operands, and cp.async.bulk.tensor writes shared memory, through the async proxy;
// st.shared and cp.async (non-bulk) write through the generic proxy. One location accessed through both
// needs a cross-proxy fence: fence.proxy.async between the generic writes and the async reads (wgmma.fence:
// "An async proxy fence must be used to establish an ordering between prior writes to shared memory
// matrices and subsequent reads of the same matrices in a wgmma.mma_async instruction"). A bulk copy's
// writes reach generic reads through its mbarrier's completed phase, a wgmma's results through
// wgmma.wait_group (an implicit generic-async proxy fence follows its completion).
// Emulated: the async proxy sees a copy of the block's dynamic shared memory of its own (fresh bytes at
// first). fence.proxy.async copies the whole generic view into it: every thread's writes so far, not only
// the fencing thread's (more lenient than the ISA: a writer that relies on another thread's fence passes
// here); a bulk tensor copy writes both views; a wgmma operand byte that differs between the views when
// the wgmma is issued was written by the generic proxy with no fence.proxy.async since: a launch error.
struct AsyncView {
  uint64_t serial = ~uint64_t(0);
  std::vector<char> bytes;
};
thread_local AsyncView g_async;

char* async_view() {
  if (g_async.serial != block_serial()) {
    g_async.serial = block_serial();
    g_async.bytes.assign(dynamic_shared_size(), char(kFreshShared));
  }
  return g_async.bytes.data();
}

// A set of the running block's mbarriers (by shared-memory offset), empty at each block's start.
class BarSet {
 public:
  bool has(unsigned bar) {
    const std::vector<unsigned>& b = now();
    return std::find(b.begin(), b.end(), bar) != b.end();
  }
  void add(unsigned bar) {
    if (!has(bar)) bars_.push_back(bar);
  }
  void remove(unsigned bar) {
    std::vector<unsigned>& b = now();
    b.erase(std::remove(b.begin(), b.end(), bar), b.end());
  }
  void clear() { now().clear(); }

 private:
  std::vector<unsigned>& now() {
    if (serial_ != block_serial()) {
      serial_ = block_serial();
      bars_.clear();
    }
    return bars_;
  }
  uint64_t serial_ = ~uint64_t(0);
  std::vector<unsigned> bars_;
};

// mbarrier.init writes the object through the generic proxy; a bulk copy completes its bytes on the object
// through the async proxy, which must see the initialisation: fence.mbarrier_init.release.cluster (PTX ISA
// "Membar/Fence Instructions": the light-weight fence for prior mbarrier.init operations) or a full
// fence.proxy.async between them. Emulated as the proxy fence above, for every thread: a fence by any
// thread publishes every initialisation so far; a bulk tensor copy on an object initialised since is a
// launch error.
thread_local BarSet g_unfenced;  // initialised since the last fence.mbarrier_init / fence.proxy.async

// ================= mbarrier =================
// "mbarrier": the object holds a phase, the pending arrival count of the current phase, the expected
// arrival count (from init; every phase starts with pending = expected) and the tx-count (bytes of
// asynchronous transactions still expected; expect_tx raises it, complete_tx lowers it). The current
// phase completes when pending arrivals and tx-count are both zero; the phase bit then flips.
// test_wait / try_wait .parity p report whether the phase with parity p has completed, i.e. whether
// the current phase's parity differs from p. The valid range of tx-count is [-(2^20 - 1), 2^20 - 1],
// of the expected count [1, 2^20 - 1].
// Encoding of the 8 bytes here: bits 0-19 pending, 20-39 expected, 40 phase, 41-61 tx-count (two's
// complement, 21 bits), 62-63 = 01 once initialised (fresh shared memory is 0xff...: "not initialised").
struct Bar {
  uint32_t pending, expected, phase;
  int32_t tx;
};
constexpr uint64_t kMask20 = (uint64_t(1) << 20) - 1;

Bar load_bar(unsigned bar, const char* op) {
  if (bar % 8 != 0) failf("%s: mbarrier address not 8-byte aligned", op);
  uint64_t w;
  std::memcpy(&w, smem_at(bar, 8, op), 8);
  if ((w >> 62) != 1) failf("%s: mbarrier not initialised (mbarrier.init)", op);
  Bar b;
  b.pending = uint32_t(w & kMask20);
  b.expected = uint32_t((w >> 20) & kMask20);
  b.phase = uint32_t((w >> 40) & 1);
  const uint32_t tx21 = uint32_t((w >> 41) & ((uint64_t(1) << 21) - 1));
  b.tx = (tx21 & (1u << 20)) ? int32_t(tx21) - (1 << 21) : int32_t(tx21);
  return b;
}

// "Phase of the mbarrier object": "For each phase of the mbarrier object, at least one test_wait or
// try_wait operation must be performed which returns True for waitComplete before an arrive-on operation
// in the subsequent phase." The mbarriers of the running block whose last completed phase no wait has
// seen complete yet: an arrive-on on one of them is a launch error (a producer a whole phase ahead of its
// consumers, which a GPU need not survive).
thread_local BarSet g_unseen;

void check_phase_seen(unsigned bar, const char* op) {
  if (g_unseen.has(bar))
    failf("%s: an arrive-on in a phase of the mbarrier at offset %u whose previous phase no test_wait or try_wait "
          "has seen complete", op, bar);
}

void store_bar(unsigned bar, Bar b) {
  if (b.pending == 0 && b.tx == 0) {  // the current phase completes
    b.phase ^= 1u;
    b.pending = b.expected;
    g_unseen.add(bar);
  }
  const uint64_t w = uint64_t(b.pending) | (uint64_t(b.expected) << 20) | (uint64_t(b.phase) << 40) |
                     ((uint64_t(uint32_t(b.tx)) & ((uint64_t(1) << 21) - 1)) << 41) | (uint64_t(1) << 62);
  std::memcpy(smem_at(bar, 8, "mbarrier"), &w, 8);
  note_progress();
}

void add_tx(Bar& b, int64_t delta, const char* op) {
  const int64_t tx = int64_t(b.tx) + delta;
  if (tx > int64_t(kMask20) || tx < -int64_t(kMask20)) failf("%s: mbarrier tx-count out of range", op);
  b.tx = int32_t(tx);
}

// ================= bulk tensor copies (queued on their mbarrier) =================
struct Copy {
  uint64_t serial;
  unsigned dst, bar;
  TensorMapFields map;
  int32_t coords[5];
};
thread_local std::deque<Copy> g_copies;

uint32_t swizzle(uint32_t addr, uint32_t swizzle_bytes) {
  // 128B: address bits [4:6] ^= bits [7:9]; 64B: [4:5] ^= [7:8]; 32B: [4] ^= [7] (the 16-byte chunk
  // within each swizzle-span row is permuted by the row index within the repeating 8-row pattern)
  const uint32_t bits = swizzle_bytes == 128 ? 3 : swizzle_bytes == 64 ? 2 : swizzle_bytes == 32 ? 1 : 0;
  return addr ^ (((addr >> 7) & ((1u << bits) - 1u)) << 4);
}

// Element e of the box at `coords` (dimension 0 innermost) in the tensor of `m`: its global address, or
// nullptr when it lies outside the tensor.
const char* box_element(const TensorMapFields& m, const int32_t* coords, size_t e) {
  const char* at = m.base;
  for (unsigned i = 0; i < m.rank; i++) {
    const int64_t g = int64_t(coords[i]) + int64_t(e % m.box[i]);
    e /= m.box[i];
    if (g < 0 || uint64_t(g) >= m.dim[i]) return nullptr;
    at += uint64_t(g) * (i == 0 ? m.elem_bytes : m.stride[i - 1]);
  }
  return at;
}

// "cp.async.bulk.tensor", .tile mode: the box of boxDim elements starting at the (signed) coordinates
// lands densely in shared memory, dimension 0 innermost; elements outside the tensor are zero (or NaN
// with FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA); with a swizzle the 16-byte chunks move as swizzle() says.
// The mbarrier's tx-count drops by the box's bytes (out-of-bounds elements included).
size_t box_elements(const TensorMapFields& m) {
  size_t n = 1;
  for (unsigned i = 0; i < m.rank; i++) n *= m.box[i];
  return n;
}

// The shared-memory offset where element e of a copy's box lands (checked against the block's size).
uint32_t landing_offset(const Copy& c, size_t e) {
  const uint32_t at = swizzle(uint32_t(c.dst + e * c.map.elem_bytes), c.map.swizzle_bytes);
  if (size_t(at) + c.map.elem_bytes > dynamic_shared_size())
    fail("cp.async.bulk.tensor: a swizzled address lies outside the block's shared memory");
  return at;
}

// While a copy is in flight its destination holds poison (all bytes kCopyPoison: NaN as f32, bf16 and f16) in
// both views, so that a read before the wait that covers the copy sees NaN, not the bytes of an earlier
// tile (PTX ISA, "Asynchronous copy": "reading from the destination memory location before the
// asynchronous operation completes, exhibits undefined behavior"). A byte that is no longer poison when
// the copy lands, and not what the copy writes there, was written meanwhile by a store or another copy:
// its write races with this copy's (nothing orders the two), so which one stays is unknown: a launch
// error (a write of the very bytes the copy brings, such as two copies of the same data, passes).
constexpr unsigned char kCopyPoison = 0xff;

void poison_destination(const Copy& c) {
  char* smem = static_cast<char*>(dynamic_shared());
  char* view = async_view();
  for (size_t e = 0, n = box_elements(c.map); e < n; e++) {
    const uint32_t at = landing_offset(c, e);
    std::memset(smem + at, kCopyPoison, c.map.elem_bytes);
    std::memset(view + at, kCopyPoison, c.map.elem_bytes);
  }
}

void land(const Copy& c, bool poisoned) {
  const TensorMapFields& m = c.map;
  const size_t box_elems = box_elements(m);
  const size_t bytes = box_elems * m.elem_bytes;
  smem_at(c.dst, bytes, "cp.async.bulk.tensor");
  char* smem = static_cast<char*>(dynamic_shared());
  char* view = async_view();
  for (size_t e = 0; e < box_elems; e++) {
    const char* src = box_element(m, c.coords, e);
    const uint32_t at = landing_offset(c, e);
    char* dst = smem + at;
    unsigned char value[8];  // the element's bytes (elem_bytes <= 8)
    if (src) std::memcpy(value, src, m.elem_bytes);
    else if (m.nan_fill && m.elem_bytes == 2) std::memset(value, 0xff, 2);  // a NaN in f16 and bf16
    else if (m.nan_fill && m.elem_bytes == 4) std::memcpy(value, "\xff\xff\xc0\x7f", 4);
    else std::memset(value, 0, m.elem_bytes);
    if (poisoned)
      for (unsigned k = 0; k < m.elem_bytes; k++) {
        const unsigned char now = static_cast<unsigned char>(dst[k]);
        if (now != kCopyPoison && now != value[k])
          failf("cp.async.bulk.tensor: shared memory at offset %u, the destination of a copy in flight, was "
                "written (by a store or another copy) before the copy completed", unsigned(at + k));
      }
    std::memcpy(dst, value, m.elem_bytes);
    std::memcpy(view + at, value, m.elem_bytes);  // the async proxy's write: both views
  }
  Bar b = load_bar(c.bar, "cp.async.bulk.tensor");
  add_tx(b, -int64_t(bytes), "cp.async.bulk.tensor");
  store_bar(c.bar, b);
}

void land_pending(unsigned bar) {
  const uint64_t serial = block_serial();
  for (size_t i = 0; i < g_copies.size();) {
    if (g_copies[i].serial != serial) {  // a previous block's leftovers
      g_copies.erase(g_copies.begin() + long(i));
      continue;
    }
    if (g_copies[i].bar == bar) {
      const Copy c = g_copies[i];
      g_copies.erase(g_copies.begin() + long(i));
      land(c, true);
      continue;
    }
    i++;
  }
}

bool wait_parity(unsigned bar, unsigned parity, const char* op) {
  land_pending(bar);
  Bar b = load_bar(bar, op);
  if (b.phase != (parity & 1u)) {
    g_unseen.remove(bar);  // the phase just completed (parity: the current one's neighbour) is seen
    note_progress();
    return true;
  }
  spin();  // another thread may arrive meanwhile; the caller polls again
  return false;
}

}  // namespace

void mbarrier_init(unsigned bar, unsigned count) {
  if (count < 1 || count > kMask20) fail("mbarrier.init: count outside [1, 2^20 - 1]");
  if (bar % 8 != 0) fail("mbarrier.init: address not 8-byte aligned");
  const uint64_t w = uint64_t(count) | (uint64_t(count) << 20) | (uint64_t(1) << 62);
  std::memcpy(smem_at(bar, 8, "mbarrier.init"), &w, 8);
  g_unseen.remove(bar);
  g_unfenced.add(bar);
  note_progress();
}

void fence_mbarrier_init() { g_unfenced.clear(); }

void mbarrier_arrive(unsigned bar) {
  Bar b = load_bar(bar, "mbarrier.arrive");
  check_phase_seen(bar, "mbarrier.arrive");
  if (b.pending == 0) fail("mbarrier.arrive: more arrivals than the phase expects");
  b.pending--;
  store_bar(bar, b);
  offer_switch();
}

void mbarrier_expect_tx(unsigned bar, unsigned tx_bytes) {
  Bar b = load_bar(bar, "mbarrier.expect_tx");
  add_tx(b, tx_bytes, "mbarrier.expect_tx");
  store_bar(bar, b);
}

void mbarrier_arrive_expect_tx(unsigned bar, unsigned tx_bytes) {
  Bar b = load_bar(bar, "mbarrier.arrive.expect_tx");  // expect-tx, then arrive-on
  check_phase_seen(bar, "mbarrier.arrive.expect_tx");
  add_tx(b, tx_bytes, "mbarrier.arrive.expect_tx");
  if (b.pending == 0) fail("mbarrier.arrive.expect_tx: more arrivals than the phase expects");
  b.pending--;
  store_bar(bar, b);
  offer_switch();
}

void mbarrier_complete_tx(unsigned bar, unsigned tx_bytes) {
  Bar b = load_bar(bar, "mbarrier.complete_tx");
  add_tx(b, -int64_t(tx_bytes), "mbarrier.complete_tx");
  store_bar(bar, b);
}

bool mbarrier_test_wait_parity(unsigned bar, unsigned parity) {
  return wait_parity(bar, parity, "mbarrier.test_wait");
}
bool mbarrier_try_wait_parity(unsigned bar, unsigned parity) {
  return wait_parity(bar, parity, "mbarrier.try_wait");
}

void cp_async_bulk_tensor_g2s(unsigned dst, const CUtensorMap* map, unsigned bar, const int32_t* coords) {
  const TensorMapFields* m = tensor_map_fields(map);
  if (!m) fail("cp.async.bulk.tensor: the tensor map was not encoded (cuTensorMapEncodeTiled)");
  if (dst % 128 != 0) fail("cp.async.bulk.tensor: shared memory destination not 128-byte aligned");
  (void)load_bar(bar, "cp.async.bulk.tensor");  // must be an initialised mbarrier now
  if (g_unfenced.has(bar))
    fail("cp.async.bulk.tensor: its mbarrier was initialised with no fence.mbarrier_init or fence.proxy.async since");
  Copy c;
  c.serial = block_serial();
  c.dst = dst;
  c.bar = bar;
  c.map = *m;
  for (unsigned i = 0; i < 5; i++) c.coords[i] = i < m->rank ? coords[i] : 0;
  if (runs_ahead()) {
    land(c, false);  // the "warps" schedule: at once (runtime.cpp)
  } else {
    poison_destination(c);
    g_copies.push_back(c);
  }
}

// ================= bulk reductions, shared -> global =================
// "cp.reduce.async.bulk.tensor", .tile mode: each element of the box at `src` (laid out in shared memory as
// a load of the same box would land it: dense, dimension 0 innermost, swizzled as the map says) is
// reduced into the tensor's element at coords + its index; elements outside the tensor are skipped. Each
// element's reduction is atomic (other blocks may reduce into the same elements). The source is read
// through the async proxy: stores to it need a fence.proxy.async first ("proxies"). .bulk_group: the
// operation joins the executing thread's bulk async-group closed by its next cp.async.bulk.commit_group;
// "cp.async.bulk.wait_group N" waits until at most the N most recent of the thread's groups are pending,
// with .read until their reads of the source have completed (the source may be written again after it).
// Emulated: the source is read at issue; the additions land at the wait that covers the operation, which
// first fails the launch if the source was written since its issue (by either proxy). A block's groups
// never waited for are dropped with it: their shared memory is gone before the reads could complete.
namespace {
struct BulkReduce {
  TensorMapFields map;
  int32_t coords[5];
  std::vector<uint32_t> offs;  // the source elements' shared-memory offsets and values read at issue
  std::vector<float> vals;
};
struct BulkThread {
  std::vector<BulkReduce> open;               // issued, not yet committed
  std::deque<std::vector<BulkReduce>> groups;  // committed, oldest first
};
struct BulkBlock {
  uint64_t serial = ~uint64_t(0);
  std::vector<BulkThread> threads;
};
thread_local BulkBlock g_bulk;

BulkThread& bulk_thread() {
  const ThreadCtx& c = ctx();
  if (g_bulk.serial != block_serial()) {
    g_bulk.serial = block_serial();
    g_bulk.threads.assign(size_t(c.block_dim.x) * c.block_dim.y * c.block_dim.z, BulkThread{});
  }
  const size_t tid = (size_t(c.thread_idx.z) * c.block_dim.y + c.thread_idx.y) * c.block_dim.x + c.thread_idx.x;
  return g_bulk.threads[tid];
}

void reduce_into_global(const BulkReduce& r) {
  const char* smem = static_cast<const char*>(dynamic_shared());
  for (size_t i = 0; i < r.offs.size(); i++)
    if (bits_at<uint32_t>(smem + r.offs[i]) != bits_at<uint32_t>(&r.vals[i]))
      failf("cp.async.bulk.wait_group: shared memory at offset %u, read by a cp.reduce.async.bulk.tensor in flight, "
            "was written before this wait", r.offs[i]);
  // atomic_add flushes subnormals in global memory, as "cp.reduce.async.bulk" says of its .add.f32 ("The
  // current implementation of cp.reduce.async.bulk.add.f32 flushes subnormal inputs and results to
  // sign-preserving zero"); the tensor form's section says nothing of it, taken to be the same
  for (size_t e = 0; e < r.offs.size(); e++)
    if (const char* dst = box_element(r.map, r.coords, e))
      atomic_add(reinterpret_cast<float*>(const_cast<char*>(dst)), r.vals[e]);
}
}  // namespace

void cp_reduce_async_bulk_tensor_add_s2g(const CUtensorMap* map, const int32_t* coords, unsigned src) {
  const TensorMapFields* m = tensor_map_fields(map);
  if (!m) fail("cp.reduce.async.bulk.tensor: the tensor map was not encoded (cuTensorMapEncodeTiled)");
  if (!m->float32) fail("cp.reduce.async.bulk.tensor: only .add on .f32 tensors is emulated");
  if (src % 128 != 0) fail("cp.reduce.async.bulk.tensor: shared memory source not 128-byte aligned");
  size_t box_elems = 1;
  for (unsigned i = 0; i < m->rank; i++) box_elems *= m->box[i];
  // every check before anything is allocated: a failed check ends the fiber (nothing would be freed)
  const char* smem = static_cast<const char*>(dynamic_shared());
  const char* view = async_view();
  for (size_t e = 0; e < box_elems; e++) {
    const uint32_t at = swizzle(uint32_t(src + e * 4), m->swizzle_bytes);
    if (size_t(at) + 4 > dynamic_shared_size())
      fail("cp.reduce.async.bulk.tensor: the source lies outside the block's shared memory");
    if (bits_at<uint32_t>(smem + at) != bits_at<uint32_t>(view + at))
      failf("cp.reduce.async.bulk.tensor: shared memory at offset %u was written by the generic proxy with no "
            "fence.proxy.async before this read", at);
  }
  BulkThread& t = bulk_thread();
  t.open.emplace_back();
  BulkReduce& r = t.open.back();
  r.map = *m;
  for (unsigned i = 0; i < 5; i++) r.coords[i] = i < m->rank ? coords[i] : 0;
  r.offs.resize(box_elems);
  r.vals.resize(box_elems);
  for (size_t e = 0; e < box_elems; e++) {
    r.offs[e] = swizzle(uint32_t(src + e * 4), m->swizzle_bytes);
    std::memcpy(&r.vals[e], view + r.offs[e], 4);
  }
}

void cp_async_bulk_commit_group() {
  BulkThread& t = bulk_thread();
  t.groups.push_back(std::move(t.open));
  t.open.clear();
}

void cp_async_bulk_wait_group(int pending, bool read) {
  if (pending < 0) fail("cp.async.bulk.wait_group: N must not be negative");
  (void)read;  // the reads and the writes complete together here
  BulkThread& t = bulk_thread();
  while (t.groups.size() > size_t(pending)) {
    for (const BulkReduce& r : t.groups.front()) reduce_into_global(r);
    t.groups.pop_front();
  }
  note_progress();
}

// ================= wgmma =================
namespace {

// "Matrix Descriptor Format": bits 0-13 start address >> 4, 16-29 leading dimension byte offset >> 4,
// 32-45 stride dimension byte offset >> 4, 49-51 matrix base offset, 62-63 swizzle mode (0 none /
// interleave, 1 128B, 2 64B, 3 32B).
struct Desc {
  uint32_t start, lbo, sbo, swz;
};
Desc decode(uint64_t d) {
  if ((d >> 49) & 7) fail("wgmma: matrix base offset other than 0 is not emulated");
  const uint32_t mode = uint32_t(d >> 62);
  return Desc{uint32_t(d & 0x3fff) << 4, uint32_t((d >> 16) & 0x3fff) << 4, uint32_t((d >> 32) & 0x3fff) << 4,
              mode == 1 ? 128u : mode == 2 ? 64u : mode == 3 ? 32u : 0u};
}

// "Shared Memory Matrix Layout", canonical layouts for 16-bit elements (T = 8 elements per 16 bytes),
// element (mn, k) of an M x K (A) or N x K (B) operand, k < 16:
//   K-major, no swizzle:  core matrices of 8 rows x 16 bytes; rows of a core matrix 16 bytes apart,
//                         the next 8 rows at SBO, the next 8 k at LBO
//   K-major, swizzle S:   rows S bytes apart within 8-row atoms, the next 8 rows at SBO; k contiguous
//   MN-major, swizzle S:  S/2 consecutive mn contiguous, the next S/2 mn at LBO; k rows S bytes
//                         apart within 8-row atoms, the next 8 k at SBO
//   MN-major, none:       8 consecutive mn contiguous, the next 8 mn at SBO; k rows 16 bytes apart,
//                         the next 8 k at LBO
// then the swizzle permutes the address (swizzle()).
uint32_t operand_offset(const Desc& d, bool mn_major, int mn, int k) {
  uint32_t a;
  if (!mn_major) {
    if (d.swz == 0) a = d.start + (mn / 8) * d.sbo + (mn % 8) * 16 + (k / 8) * d.lbo + (k % 8) * 2;
    else a = d.start + (mn / 8) * d.sbo + (mn % 8) * d.swz + k * 2;
  } else {
    if (d.swz == 0) a = d.start + (mn / 8) * d.sbo + (mn % 8) * 2 + (k / 8) * d.lbo + (k % 8) * 16;
    else {
      const int per = int(d.swz / 2);
      a = d.start + (mn / per) * d.lbo + (mn % per) * 2 + (k / 8) * d.sbo + (k % 8) * d.swz;
    }
  }
  return swizzle(a, d.swz);
}

float bf16_bits(uint16_t v) {
  __nv_bfloat16 h;
  h.__x = v;
  return __bfloat162float(h);
}

float half_of(uint32_t reg, int hi) {
  __nv_bfloat16 h;
  h.__x = uint16_t(hi ? reg >> 16 : reg & 0xffffu);
  return __bfloat162float(h);
}

// What the accumulators hold while in flight: a signalling NaN (a read propagates a NaN; any
// arithmetic on it, even x *= c, stores a quiet NaN, so a write is seen at the wait, where the
// registers must still hold exactly this).
constexpr uint32_t kPoison = 0x7f8adbadu;
// What register A operands hold while in flight: two bf16 NaNs. The PTX ISA ("wgmma.wait_group"):
// "Accessing the accumulator register or the input register containing the fragments of matrix A of
// a wgmma.mma_async instruction without first performing a wgmma.wait_group instruction that waits
// on a wgmma-group including that wgmma.mma_async instruction is undefined behavior." A read gives
// NaNs; a write is seen at the wait, where the registers must still hold exactly this.
constexpr uint32_t kPoisonA = 0x7f8a7f8au;

struct Op {
  int n;
  bool rs, ta, tb, scale_d, chain;
  uint64_t da, db;
  uint64_t group;  // ~0 until committed
  uint32_t a[32][4];       // rs: each lane's A fragment, read at issue
  uint32_t* a_regs[32];    // rs: where each lane holds it (poisoned until the wait)
  float* dst[32];
  std::vector<float> cin;  // 32 lanes x n/2: the accumulators at issue (unless chained)
  // the shared-memory operand elements, read through the async proxy at issue: B (16 x n) then A
  // (16 x 16, unless rs), their offsets and bits (which must still be there at completion)
  std::vector<uint32_t> offs;
  std::vector<uint16_t> vals;
};
struct WarpState {
  uint64_t serial = ~uint64_t(0), gen = ~uint64_t(0);
  bool fenced = false;
  uint64_t committed = 0;
  std::deque<Op> ops;
};
thread_local std::vector<WarpState> g_warps;

WarpState& warp_state() {
  const unsigned w = warp_id();
  if (g_warps.size() <= w) g_warps.resize(w + 1);
  WarpState& s = g_warps[w];
  if (s.serial != block_serial()) {
    s = WarpState{};
    s.serial = block_serial();
  }
  return s;
}

// ".aligned" (wgmma.fence, wgmma.mma_async, wgmma.commit_group, wgmma.wait_group, setmaxnreg): "all
// threads in the warpgroup must execute the same ... instruction"; in code whose condition the warpgroup
// does not evaluate identically, "behavior is undefined". Each warp's sequence of these instructions is
// checked against the first of its warpgroup's warps to reach each step: the instruction, its immediates
// (shape, transposes, wait count, register count) and its operands other than registers (the scale-d
// predicate and the shared-memory descriptors, which describe the warpgroup's one A and one B: warps
// naming different matrices would leave the product undefined). Per block; warps that run ahead leave
// the steps for the others to check.
struct Step {
  const char* op;
  uint64_t x[3];
  unsigned warp;  // the warp that recorded it
};
struct Warpgroup {
  std::deque<Step> steps;  // from step number `base` on
  uint64_t base = 0, next[4] = {0, 0, 0, 0};
};
struct Warpgroups {
  uint64_t serial = ~uint64_t(0);
  std::vector<Warpgroup> of;
};
thread_local Warpgroups g_warpgroups;

void describe(const Step& st, char* out, size_t size) {
  if (std::strcmp(st.op, "wgmma.mma_async") == 0)
    snprintf(out, size, "%s (n %u, %s, scale-d %u, A %#llx, B %#llx)", st.op, unsigned(st.x[0] & 0xffff),
             st.x[0] >> 16 & 1 ? "A in registers" : "A in shared memory", unsigned(st.x[0] >> 19 & 1),
             static_cast<unsigned long long>(st.x[1]), static_cast<unsigned long long>(st.x[2]));
  else if (std::strcmp(st.op, "wgmma.fence") == 0 || std::strcmp(st.op, "wgmma.commit_group") == 0)
    snprintf(out, size, "%s", st.op);
  else  // wgmma.wait_group N, setmaxnreg.{inc,dec} count
    snprintf(out, size, "%s %llu", st.op, static_cast<unsigned long long>(st.x[0]));
}

void same_in_warpgroup(const char* op, uint64_t x0, uint64_t x1 = 0, uint64_t x2 = 0) {
  if (g_warpgroups.serial != block_serial()) {
    g_warpgroups.of.clear();
    g_warpgroups.serial = block_serial();
  }
  const unsigned w = warp_id();
  if (g_warpgroups.of.size() <= w / 4) g_warpgroups.of.resize(w / 4 + 1);
  Warpgroup& g = g_warpgroups.of[w / 4];
  const Step mine{op, {x0, x1, x2}, w};
  const uint64_t at = g.next[w % 4]++;
  if (at - g.base == g.steps.size()) {
    g.steps.push_back(mine);
  } else {
    const Step& first = g.steps[at - g.base];
    if (std::strcmp(first.op, op) != 0 || std::memcmp(first.x, mine.x, sizeof mine.x) != 0) {
      static thread_local char a[160], b[160];
      describe(mine, a, sizeof a);
      describe(first, b, sizeof b);
      failf("warp %u executed %s where warp %u of its warpgroup executed %s (.aligned: the same instruction)", w, a, first.warp, b);
    }
  }
  const uint64_t done = *std::min_element(g.next, g.next + 4);  // steps every warp has passed
  while (g.base < done && !g.steps.empty()) {
    g.steps.pop_front();
    g.base++;
  }
}

// A warp that stopped early (returned before a wgmma.fence, skipped the last wait) left steps the
// others executed: each warpgroup's warps must have executed as many as one another.
const char* unequal_steps() {
  if (g_warpgroups.serial != block_serial()) return nullptr;  // no .aligned instruction in this block
  for (size_t g = 0; g < g_warpgroups.of.size(); g++) {
    const Warpgroup& wg = g_warpgroups.of[g];
    const uint64_t most = *std::max_element(wg.next, wg.next + 4);
    for (unsigned i = 0; i < 4; i++)
      if (wg.next[i] != most) {
        static thread_local char msg[200];
        snprintf(msg, sizeof msg, "warp %u executed %llu of the %llu wgmma/setmaxnreg instructions of its warpgroup (.aligned: the same instructions)",
                 unsigned(4 * g + i), static_cast<unsigned long long>(wg.next[i]), static_cast<unsigned long long>(most));
        return msg;
      }
  }
  return nullptr;
}

const WarpSlot* meet(const char* op, const WarpSlot& in, bool& first) {
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  if ((warp_id() / 4 + 1) * 128 > threads) failf("%s: the warp's warpgroup is incomplete (4 warps)", op);
  const WarpSlot* all = warp_exchange(0xffffffffu, op, in);
  WarpState& s = warp_state();
  first = s.gen != warp_generation();
  s.gen = warp_generation();
  return all;
}

// The operand elements of the op being issued, gathered here first: a failed check ends the fiber, which
// is never resumed, so nothing it allocated on the way (an Op's vectors on its stack) would be freed
// (LeakSanitizer); this thread-local scratch stays reachable.
struct Gathered {
  std::vector<uint32_t> offs;
  std::vector<uint16_t> vals;
};
thread_local Gathered g_gathered;

// An operand element read through the async proxy at issue ("proxies" above).
void gather(Gathered& op, uint32_t at, const char* smem, const char* view) {
  if (size_t(at) + 2 > dynamic_shared_size())
    fail("wgmma.mma_async: an operand lies outside the block's shared memory");
  if (bits_at<uint16_t>(smem + at) != bits_at<uint16_t>(view + at))
    failf("wgmma.mma_async: shared memory at offset %u was written by the generic proxy with no fence.proxy.async "
          "before this read", at);
  op.offs.push_back(at);
  op.vals.push_back(bits_at<uint16_t>(view + at));
}

// Register A operands in flight, by address (lanes or warps may pass one array; a GPU's threads would
// each have registers of their own): the values read at the first issue, and how many lane-products
// in flight read them. They are given back when the last of those completes. Per block.
struct HeldA {
  uint32_t vals[4];
  int readers;
};
struct HeldAs {
  uint64_t serial = ~uint64_t(0);
  std::unordered_map<uint32_t*, HeldA> by_address;
};
thread_local HeldAs g_held_a;

std::unordered_map<uint32_t*, HeldA>& held_a() {
  if (g_held_a.serial != block_serial()) {  // an earlier block's arrays are gone
    g_held_a.by_address.clear();
    g_held_a.serial = block_serial();
  }
  return g_held_a.by_address;
}

// Registers A of an in-flight product must still hold kPoisonA: anything else was written meanwhile.
void check_a_untouched(const uint32_t* regs) {
  for (int r = 0; r < 4; r++)
    if (regs[r] != kPoisonA)
      fail("wgmma: A operand registers written while their wgmma.mma_async was in flight (before wgmma.wait_group)");
}

// D rows of this warp: 16 (warp % 4) + r. Computes and writes back one op for all 32 lanes. The operands
// were read at issue; the hardware may read them any time until the completion this observes, so they
// may not have been written since (by either proxy).
void complete(Op& op) {
  if (op.rs) {
    for (int lane = 0; lane < 32; lane++) check_a_untouched(op.a_regs[lane]);
    auto& held = held_a();
    for (int lane = 0; lane < 32; lane++) {
      auto it = held.find(op.a_regs[lane]);
      if (it != held.end() && --it->second.readers == 0) {  // no other product in flight reads them
        std::memcpy(op.a_regs[lane], it->second.vals, sizeof(it->second.vals));
        held.erase(it);
      }
    }
  }
  if (!op.chain)
    for (int lane = 0; lane < 32; lane++)
      for (int r = 0; r < op.n / 2; r++)
        if (bits_at<uint32_t>(&op.dst[lane][r]) != kPoison)
          fail("wgmma: accumulator registers written while their wgmma.mma_async was in flight (before wgmma.wait_group)");
  const char* smem = static_cast<const char*>(dynamic_shared());
  for (size_t i = 0; i < op.offs.size(); i++)
    if (bits_at<uint16_t>(smem + op.offs[i]) != op.vals[i])
      failf("wgmma.wait_group: shared memory at offset %u, read by a wgmma.mma_async in flight, was written before "
            "this wait", op.offs[i]);
  const int n = op.n;
  std::vector<float> A(16 * 16), B(16 * size_t(n));
  for (size_t e = 0; e < B.size(); e++) B[e] = bf16_bits(op.vals[e]);
  if (op.rs) {  // the mma.m16n8k16 A fragment (ptx.cpp): A(r, k) in lane (r % 8) 4 + (k % 8) / 2
    for (int r = 0; r < 16; r++)
      for (int k = 0; k < 16; k++) {
        const int i = (k >= 8 ? 4 : 0) + (r >= 8 ? 2 : 0) + (k & 1);
        A[r * 16 + k] = half_of(op.a[(r % 8) * 4 + (k % 8) / 2][i / 2], i & 1);
      }
  } else {
    for (int e = 0; e < 256; e++) A[e] = bf16_bits(op.vals[B.size() + e]);
  }
  // "Register Fragments" of the accumulator D (m64nNk16, .f32): register 4j + i of lane (g = lane / 4,
  // t = lane % 4) holds row 16 (warp % 4) + g + 8 [i >= 2], column 8 j + 2 t + (i & 1).
  for (int lane = 0; lane < 32; lane++) {
    const int g = lane >> 2, t = lane & 3;
    float* d = op.dst[lane];
    for (int j = 0; j < n / 8; j++)
      for (int i = 0; i < 4; i++) {
        const int r = g + (i >= 2 ? 8 : 0), c = 8 * j + 2 * t + (i & 1);
        float acc = 0.0f;
        for (int k = 0; k < 16; k++) acc += A[r * 16 + k] * B[size_t(k) * n + c];
        const int reg = 4 * j + i;
        const float cin = !op.scale_d ? 0.0f : op.chain ? d[reg] : op.cin[size_t(lane) * (n / 2) + reg];
        d[reg] = cin + acc;
      }
  }
}

void issue(float* d, int n, bool rs, uint64_t da, uint32_t* a, uint64_t db, int scale_d, int ta, int tb) {
  if (n < 8 || n > 256 || n % 8 != 0) fail("wgmma.mma_async: n must be a multiple of 8 in [8, 256]");
  WarpSlot in{};
  // rs: where the lane holds A (read, then poisoned, below); the registers are the caller's to keep
  // until the wait, as a GPU's are
  in.v[0] = rs ? uint64_t(reinterpret_cast<uintptr_t>(a)) : da;
  in.v[1] = db;
  in.v[2] = reinterpret_cast<uintptr_t>(d);
  in.v[3] = 0;
  bool first;
  const WarpSlot* all = meet("wgmma.mma_async", in, first);
  if (!first) return;
  census_mma(uint64_t(2) * 16 * uint64_t(n) * 16);  // this warp's 16 of the 64 rows
  same_in_warpgroup("wgmma.mma_async", uint64_t(n) | uint64_t(rs) << 16 | uint64_t(ta != 0) << 17 | uint64_t(tb != 0) << 18 | uint64_t(scale_d != 0) << 19,
                    rs ? 0 : all[0].v[0], all[0].v[1]);
  WarpState& s = warp_state();
  if (!s.fenced) fail("wgmma.mma_async without a wgmma.fence since the warp's last wgmma.wait_group");
  Op op;
  op.n = n;
  op.rs = rs;
  op.ta = ta != 0;
  op.tb = tb != 0;
  op.scale_d = scale_d != 0;
  op.da = rs ? 0 : all[0].v[0];
  op.db = all[0].v[1];
  op.group = ~uint64_t(0);
  for (int lane = 0; lane < 32; lane++) {
    if (!rs && all[lane].v[0] != op.da) fail("wgmma.mma_async: the A descriptor differs between lanes");
    if (all[lane].v[1] != op.db) fail("wgmma.mma_async: the B descriptor differs between lanes");
    op.dst[lane] = reinterpret_cast<float*>(uintptr_t(all[lane].v[2]));
    if (rs) {
      uint32_t* regs = reinterpret_cast<uint32_t*>(uintptr_t(all[lane].v[0]));
      op.a_regs[lane] = regs;
      auto& held = held_a();
      auto it = held.find(regs);
      if (it != held.end()) {  // read by a product in flight: its copy (the registers must still be poisoned)
        check_a_untouched(regs);
        it->second.readers++;
        std::memcpy(op.a[lane], it->second.vals, sizeof(op.a[lane]));
      } else {
        std::memcpy(op.a[lane], regs, sizeof(op.a[lane]));
        HeldA h{};
        std::memcpy(h.vals, regs, sizeof(h.vals));
        h.readers = 1;
        held.emplace(regs, h);
        for (int r = 0; r < 4; r++) regs[r] = kPoisonA;
      }
    }
  }
  const char* smem = static_cast<const char*>(dynamic_shared());
  const char* view = async_view();
  const int row0 = int(warp_id() % 4) * 16;  // this warp's rows of D (and of A)
  Gathered& got = g_gathered;
  got.offs.clear();
  got.vals.clear();
  const Desc b_at = decode(op.db);
  for (int k = 0; k < 16; k++)
    for (int c = 0; c < n; c++) gather(got, operand_offset(b_at, op.tb, c, k), smem, view);
  if (!rs) {
    const Desc a_at = decode(op.da);
    for (int r = 0; r < 16; r++)
      for (int k = 0; k < 16; k++) gather(got, operand_offset(a_at, op.ta, row0 + r, k), smem, view);
  }
  op.offs = got.offs;
  op.vals = got.vals;
  op.chain = false;
  for (const Op& p : s.ops)
    if (p.dst[0] == op.dst[0]) op.chain = true;  // accumulates onto a result still in flight
  if (op.scale_d && !op.chain) {
    op.cin.resize(size_t(32) * (n / 2));
    for (int lane = 0; lane < 32; lane++) std::memcpy(&op.cin[size_t(lane) * (n / 2)], op.dst[lane], sizeof(float) * (n / 2));
  }
  for (int lane = 0; lane < 32; lane++)  // not readable before the wait
    for (int r = 0; r < n / 2; r++) std::memcpy(&op.dst[lane][r], &kPoison, 4);
  s.ops.push_back(std::move(op));
}

}  // namespace

void fence_proxy_async() {
  std::memcpy(async_view(), dynamic_shared(), dynamic_shared_size());
  g_unfenced.clear();
}

void wgmma_fence() {
  bool first;
  meet("wgmma.fence", WarpSlot{}, first);
  if (!first) return;
  same_in_warpgroup("wgmma.fence", 0);
  warp_state().fenced = true;
}

void wgmma_commit_group() {
  bool first;
  meet("wgmma.commit_group", WarpSlot{}, first);
  if (!first) return;
  same_in_warpgroup("wgmma.commit_group", 0);
  WarpState& s = warp_state();
  for (Op& op : s.ops)
    if (op.group == ~uint64_t(0)) op.group = s.committed;
  s.committed++;
}

// "wgmma.wait_group": "wgmma.wait_group instruction will cause the executing thread to wait until only N
// or fewer of the most recent wgmma-groups are pending and all the prior wgmma-groups committed by the
// executing threads are complete. For example, when N is 0, the executing thread waits on all the prior
// wgmma-groups to complete. Operand N is an integer constant." The ISA gives N no upper bound (ptxas of
// CUDA 13.0 assembles N = 8, 100 and 10^6 for sm_90a): any N >= 0 is valid, and with N or fewer groups
// pending nothing completes. A negative N is no count of groups (ptxas refuses -1: "expected to be
// non-negative integer"). The .sync qualifier ("wait until all threads in the warp execute the same
// wgmma.wait_group instruction"): the lanes of the warp must pass the same N.
void wgmma_wait_group(int pending) {
  if (pending < 0) failf("wgmma.wait_group: N (%d) must be a non-negative integer constant", pending);
  WarpSlot in{};
  in.v[0] = uint64_t(uint32_t(pending));
  bool first;
  const WarpSlot* all = meet("wgmma.wait_group", in, first);
  for (int lane = 1; lane < 32; lane++)
    if (all[lane].v[0] != all[0].v[0])
      failf("wgmma.wait_group: the lanes of warp %u differ in N (%llu in lane 0, %llu in lane %d; .sync: the same instruction)",
            warp_id(), static_cast<unsigned long long>(all[0].v[0]), static_cast<unsigned long long>(all[lane].v[0]), lane);
  if (!first) return;
  same_in_warpgroup("wgmma.wait_group", uint64_t(pending));
  WarpState& s = warp_state();
  // every committed group but the newest `pending` completes, in order
  while (!s.ops.empty() && s.ops.front().group != ~uint64_t(0) && s.ops.front().group + uint64_t(pending) < s.committed) {
    complete(s.ops.front());
    s.ops.pop_front();
  }
  s.fenced = false;
}

void wgmma_m64k16_bf16_ss(float* d, int n, uint64_t desc_a, uint64_t desc_b, int scale_d, int trans_a, int trans_b) {
  issue(d, n, false, desc_a, nullptr, desc_b, scale_d, trans_a, trans_b);
}

void wgmma_m64k16_bf16_rs(float* d, int n, uint32_t (&a)[4], uint64_t desc_b, int scale_d, int trans_b) {
  issue(d, n, true, 0, a, desc_b, scale_d, 0, trans_b);
}

// "setmaxnreg": imm-reg-count in [24, 256] and a multiple of 8; .sync.aligned: every lane of the warp
// executes the same instruction; the same instruction must be executed by all warps of the warpgroup
// (here: the warpgroup must exist whole in the block, the lanes must agree on action and count, and
// the warps too: same_in_warpgroup).
void setmaxnreg(unsigned count, bool inc) {
  if (count < 24 || count > 256 || count % 8 != 0)
    failf("setmaxnreg: register count %u is not a multiple of 8 in [24, 256]", count);
  WarpSlot in{};
  in.v[0] = count;
  in.v[1] = inc ? 1 : 0;
  bool first;
  const WarpSlot* all = meet("setmaxnreg", in, first);
  for (int lane = 0; lane < 32; lane++)
    if (all[lane].v[0] != count || all[lane].v[1] != in.v[1]) fail("setmaxnreg: the lanes of the warp differ in action or count");
  if (first) same_in_warpgroup(inc ? "setmaxnreg.inc" : "setmaxnreg.dec", count);
}

}  // namespace ptx

const char* warpgroups_unequal() { return ptx::unequal_steps(); }

}  // namespace emu
}  // namespace l2e
