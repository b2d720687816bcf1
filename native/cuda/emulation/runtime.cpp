// The CPU side of the CUDA emulation build: device memory, streams and errors (cuda_runtime_api.h),
// and kernel execution with one fiber per CUDA thread (device.h explains the model).
//
// Fibers: each OS thread that launches kernels keeps a pool of fibers with 64 KiB stacks (a guard
// page below each), each in a kFiberSlot-aligned slot whose first page holds a SlotHeader: code on a
// fiber finds its fiber from its frame address (device.h, ctx()), without thread-local lookups. A fiber is started once with makecontext; afterwards fibers and the scheduler
// switch with _setjmp/_longjmp, which save only registers (swapcontext would make a system call per
// switch, and a flash-attention block switches millions of times). A fiber loops: run the kernel
// body for the CUDA thread it is given, report done, wait for the next block.
//
// Loud failures: allocations are filled with 0xff bytes (NaN as f32 and as bf16), a freed block's
// pages are unmapped, and a guard page follows every allocation and the dynamic shared memory, so an
// out-of-bounds access faults; the SIGSEGV handler then names the kernel, block and thread and aborts.
// Every block starts with fresh shared memory, dynamic and static (L2E_SHARED), filled with 0xff
// (kFreshShared).
//
// Errors: a launch with a bad configuration fails at once (cudaGetLastError after the launch); an
// error while the kernel runs (a failed check above, or L2E_CUDA_EMULATE_FAIL=<kernel> naming it) is
// asynchronous, as on a GPU: it is returned by the next cudaStreamSynchronize / cudaDeviceSynchronize,
// so only L2E_CUDA_SYNC=1 (cuda_check.h) ties it to the launch that caused it.
//
// Under AddressSanitizer (the sanitizer build, L2E_SANITIZE): every fiber switch is announced with
// __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber, and jumps go to libc's _longjmp
// directly: ASan's _longjmp interceptor would unpoison the stack being left (its live frames'
// redzones, and the whole host stack below the scheduler: kilobytes of shadow at every one of a
// kernel's millions of switches). The bytes around device allocations, dynamic shared memory and
// each static shared array that a guard page cannot cover are poisoned, so ASan reports an access
// there.
#undef _FORTIFY_SOURCE  // its longjmp check rejects jumps between fiber stacks, which is the point here
#include <dlfcn.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "census.h"
#include "device.h"

#if defined(__SANITIZE_ADDRESS__)
#define L2E_EMU_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace l2e {
namespace emu {

namespace {

#ifdef L2E_EMU_ASAN
void poison(const void* p, size_t n) { ASAN_POISON_MEMORY_REGION(p, n); }
void unpoison(const void* p, size_t n) { ASAN_UNPOISON_MEMORY_REGION(p, n); }
// glibc's _longjmp, not ASan's interceptor (see the top of the file)
using LongJmp = void (*)(jmp_buf, int);
LongJmp libc_longjmp() {
  static const LongJmp real = [] {
    void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    void* f = libc ? dlsym(libc, "_longjmp") : nullptr;
    return f ? reinterpret_cast<LongJmp>(f) : static_cast<LongJmp>(&_longjmp);
  }();
  return real;
}
// Not declared noreturn: before a call to a noreturn function ASan inserts __asan_handle_no_return,
// which would cost the same. Not instrumented: its frame is never left by a return, so redzones it
// poisoned would stay behind on the stack.
__attribute__((no_sanitize_address)) void jump(jmp_buf jb) { libc_longjmp()(jb, 1); }
#else
void poison(const void*, size_t) {}
void unpoison(const void*, size_t) {}
[[noreturn]] void jump(jmp_buf jb) { _longjmp(jb, 1); }
#endif

size_t page_size() {
  static const size_t p = size_t(sysconf(_SC_PAGESIZE));
  return p;
}
size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

// ---- errors (per host thread, like the runtime's last error) ----
thread_local cudaError_t tl_last = cudaSuccess;
thread_local std::string tl_message;  // the details of the last error set (code tl_message_code)
thread_local cudaError_t tl_message_code = cudaSuccess;

cudaError_t set_error(cudaError_t e, const std::string& message) {
  tl_last = e;
  tl_message = message;
  tl_message_code = e;
  return e;
}

// The device's error from a kernel that failed while running: reported by the next synchronisation,
// whichever host thread makes it (the kernel ran when it was launched here, but on a GPU it runs
// later: calls before that synchronisation succeed), and then by every later call that uses the
// device, as the runtime says of such errors (cudaErrorLaunchFailure: "This leaves the process in an inconsistent state and
// any further CUDA work will return the same error. To continue using CUDA, the process must be
// terminated and relaunched."). Launch-configuration errors are not of this kind: only their call fails.
std::mutex g_async_mu;
cudaError_t g_async = cudaSuccess;
std::string g_async_message;
bool g_async_seen = false;  // a synchronisation has reported it

}  // namespace

cudaError_t sticky_error() {
  std::lock_guard<std::mutex> lock(g_async_mu);
  return g_async_seen ? set_error(g_async, g_async_message) : cudaSuccess;
}

cudaError_t synchronized_error() {
  std::lock_guard<std::mutex> lock(g_async_mu);
  if (g_async == cudaSuccess) return cudaSuccess;
  g_async_seen = true;
  return set_error(g_async, g_async_message);
}

namespace {

void defer_error(cudaError_t e, const std::string& message) {
  std::lock_guard<std::mutex> lock(g_async_mu);
  if (g_async != cudaSuccess) return;  // the first error is the one reported
  g_async = e;
  g_async_message = message;
}


// ---- device memory ----
constexpr size_t kNominalMemory = size_t(16) << 30;  // what cudaMemGetInfo reports as the total

struct Allocation {
  char* map;
  size_t map_bytes;
  size_t bytes;
};
std::mutex g_mem_mu;
std::map<uintptr_t, Allocation> g_allocs;  // by user pointer
size_t g_live = 0;

// The allocation holding [p, p + n), or nullptr.
const Allocation* find_range(const void* p, size_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return nullptr;
  --it;
  if (a + n > it->first + it->second.bytes) return nullptr;
  return &it->second;
}

}  // namespace

bool device_operand(const void* p, size_t bytes, const std::string& what) {
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (find_range(p, bytes)) return true;
  }
  if (pinned_range(p, bytes)) return true;
  defer_error(cudaErrorIllegalAddress, what + ": " + std::to_string(bytes) + " bytes from " +
                                           std::to_string(reinterpret_cast<uintptr_t>(p)) +
                                           " are not inside one device allocation (a host pointer?)");
  return false;
}

namespace {

// ---- fibers ----
constexpr size_t kStack = 64 * 1024;
constexpr size_t kStaticShared = 48 * 1024;  // CUDA's limit for a block's static shared memory
constexpr size_t kDefaultDynamicShared = 48 * 1024;  // a kernel's dynamic shared memory until it opts in to more
enum State { kReady, kWarpWait, kBlockWait, kSpin, kDone, kFailed };  // kSpin: polling a wait (spin())

struct Worker;

struct Fiber {
  jmp_buf jb;
  ucontext_t uc;
  void* asan_fake = nullptr;  // ASan's fake stack of this fiber while it is switched out
  char* map = nullptr;  // the slot: header page, guard page, stack
  Worker* w = nullptr;  // the worker (OS thread) it belongs to
  bool fresh = true;    // must be (re)started with makecontext
  State state = kReady;
  const char* op = nullptr;  // the warp operation it waits at
  unsigned linear = 0, phase = 0;
  ThreadCtx c{};
  char* stack() const { return map + 2 * page_size(); }
};

// At the start of every fiber slot (ctx() in device.h reads its first member).
struct SlotHeader {
  ThreadCtx* ctx;
  Fiber* fiber;
};
static_assert(offsetof(SlotHeader, ctx) == 0, "ctx() reads the first word of the slot");

// The fiber running this code: found from the frame address (only ever called on a fiber).
Fiber* self() {
  const uintptr_t frame = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  return reinterpret_cast<const SlotHeader*>(frame & ~(kFiberSlot - 1))->fiber;
}

struct Worker {
  std::vector<std::unique_ptr<Fiber>> fibers;
  jmp_buf sched;
  Fiber* cur = nullptr;
  const void* body = nullptr;
  void (*call)(const void*) = nullptr;
  const char* kernel = nullptr;
  char* smem_map = nullptr;
  size_t smem_cap = 0, smem_size = 0;
  char* smem = nullptr;
  char* static_smem = nullptr;  // kStaticShared bytes, a guard page after them
  size_t static_used = 0;       // allocated from the top down in the running block
  size_t static_bytes = 0;      // what its arrays take (static_used less the sanitizer's redzones)
  std::vector<std::pair<const void*, void*>> static_sites;  // declaration -> the block's copy
  const void* sched_stack = nullptr;  // the scheduler's stack (for ASan's fiber switches)
  size_t sched_stack_size = 0;
  void* sched_fake = nullptr;
  std::vector<WarpSlot> slots;
  std::vector<uint64_t> warp_gen;
  std::vector<char> scratch;  // warp_scratch()
  bool failed = false;
  std::string error;
  bool altstack = false;
  uint64_t block_serial = 0;  // counts blocks run on this OS thread (per-block state elsewhere keys on it)
  uint64_t progress = 0;      // bumped by note_progress(): a polling thread's wait may now succeed
  bool lead_switch = false;   // offer_switch() ran: the "warps" schedule draws its next lead
  KernelCensus census;        // the running launch's counts (census.h)
};
thread_local Worker W;

// Fiber switches, announced to ASan (no-ops elsewhere): start before leaving a stack, finish on
// arriving at the other one.
#ifdef L2E_EMU_ASAN
void switch_to_fiber(Worker& w, Fiber* f) { __sanitizer_start_switch_fiber(&w.sched_fake, f->stack(), kStack); }
void arrived_on_fiber(Fiber* f) { __sanitizer_finish_switch_fiber(f->asan_fake, &f->w->sched_stack, &f->w->sched_stack_size); }
void switch_to_scheduler(Fiber* f) { __sanitizer_start_switch_fiber(&f->asan_fake, f->w->sched_stack, f->w->sched_stack_size); }
void arrived_on_scheduler(Worker& w) { __sanitizer_finish_switch_fiber(w.sched_fake, nullptr, nullptr); }
#else
void switch_to_fiber(Worker&, Fiber*) {}
void arrived_on_fiber(Fiber*) {}
void switch_to_scheduler(Fiber*) {}
void arrived_on_scheduler(Worker&) {}
#endif

void yield(Fiber* f) {
  if (!_setjmp(f->jb)) {
    switch_to_scheduler(f);
    jump(f->w->sched);
  }
  arrived_on_fiber(f);
}

void fiber_main() {
  Fiber* f = self();
  arrived_on_fiber(f);
  for (;;) {
    f->w->call(f->w->body);
    f->state = kDone;
    yield(f);
  }
}

void start_context(Fiber* f) {
  unpoison(f->stack(), kStack);  // redzones left by the frames of an abandoned run
  f->asan_fake = nullptr;
  getcontext(&f->uc);
  f->uc.uc_stack.ss_sp = f->stack();
  f->uc.uc_stack.ss_size = kStack;
  f->uc.uc_link = nullptr;
  makecontext(&f->uc, fiber_main, 0);
}

void resume(Worker& w, Fiber* f) {
  w.cur = f;
  if (!_setjmp(w.sched)) {
    if (f->fresh) {
      f->fresh = false;
      start_context(f);
      switch_to_fiber(w, f);
      setcontext(&f->uc);
    }
    switch_to_fiber(w, f);
    jump(f->jb);
  }
  arrived_on_scheduler(w);
  w.cur = nullptr;
}

// A fiber in a kFiberSlot-aligned slot: header page, guard page (stack overflow faults), stack.
Fiber* new_fiber() {
  const size_t used = 2 * page_size() + kStack;
  static_assert(2 * 64 * 1024 + kStack <= kFiberSlot, "a slot holds header, guard and stack at 64 KiB pages");
  void* m = mmap(nullptr, 2 * kFiberSlot, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return nullptr;
  char* const region = static_cast<char*>(m);
  char* const slot = reinterpret_cast<char*>(round_up(reinterpret_cast<uintptr_t>(region), kFiberSlot));
  if (slot > region) munmap(region, size_t(slot - region));
  munmap(slot + used, size_t(region + 2 * kFiberSlot - (slot + used)));
  mprotect(slot + page_size(), page_size(), PROT_NONE);
  auto f = std::make_unique<Fiber>();
  f->map = slot;
  f->w = &W;
  *reinterpret_cast<SlotHeader*>(slot) = SlotHeader{&f->c, f.get()};
  W.fibers.push_back(std::move(f));
  return W.fibers.back().get();
}

// ---- SIGSEGV: name the kernel ----
struct sigaction g_old_segv;
std::once_flag g_segv_once;

void put(const char* s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}
void put_u(unsigned long v) {
  char b[24];
  int i = 23;
  b[i] = 0;
  do b[--i] = char('0' + v % 10); while ((v /= 10) && i > 0);
  put(b + i);
}

void on_segv(int sig, siginfo_t* info, void* uctx) {
  if (W.kernel) {
    put("l2e CUDA emulation: out-of-bounds memory access (or stack overflow) in kernel ");
    put(W.kernel);
    if (W.cur) {
      const ThreadCtx& c = W.cur->c;
      put(", block (");
      put_u(c.block_idx.x), put(","), put_u(c.block_idx.y), put(","), put_u(c.block_idx.z);
      put("), thread (");
      put_u(c.thread_idx.x), put(","), put_u(c.thread_idx.y), put(","), put_u(c.thread_idx.z);
      put(")");
    }
    put("\n");
    abort();
  }
  if (g_old_segv.sa_flags & SA_SIGINFO) {
    if (g_old_segv.sa_sigaction) g_old_segv.sa_sigaction(sig, info, uctx);
    return;
  }
  if (g_old_segv.sa_handler == SIG_IGN) return;
  if (g_old_segv.sa_handler != SIG_DFL && g_old_segv.sa_handler) {
    g_old_segv.sa_handler(sig);
    return;
  }
  signal(SIGSEGV, SIG_DFL);  // returning re-raises the fault with the default action
}

void install_segv_handler() {
  std::call_once(g_segv_once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_old_segv);
  });
  if (!W.altstack) {  // the handler must not run on an overflowed fiber stack
    stack_t ss{};
    ss.ss_size = 64 * 1024;
    ss.ss_sp = malloc(ss.ss_size);
    ss.ss_flags = 0;
    stack_t old{};
    if (sigaltstack(nullptr, &old) == 0 && !(old.ss_flags & SS_DISABLE)) {
      free(ss.ss_sp);  // the thread already has one
    } else {
      sigaltstack(&ss, nullptr);
    }
    W.altstack = true;
  }
}

std::string dims(uint3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

bool ensure_shared(size_t bytes) {
  const size_t cap = round_up(bytes == 0 ? 1 : bytes, page_size());
  if (cap > W.smem_cap) {
    if (W.smem_map) {
      unpoison(W.smem_map, W.smem_cap);
      munmap(W.smem_map, W.smem_cap + page_size());
    }
    void* m = mmap(nullptr, cap + page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      W.smem_map = nullptr;
      W.smem_cap = 0;
      return false;
    }
    W.smem_map = static_cast<char*>(m);
    W.smem_cap = cap;
    mprotect(W.smem_map + cap, page_size(), PROT_NONE);
  }
  W.smem_size = bytes;
  W.smem = W.smem_map + W.smem_cap - bytes;  // ends at the guard page
  poison(W.smem_map, W.smem_cap - bytes);
  unpoison(W.smem, bytes);
  if (!W.static_smem) {
    void* m = mmap(nullptr, kStaticShared + page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return false;
    W.static_smem = static_cast<char*>(m);
    mprotect(W.static_smem + kStaticShared, page_size(), PROT_NONE);
    poison(W.static_smem, kStaticShared);  // unpoisoned array by array as blocks declare them
  }
  return true;
}

// The order threads run in between meeting points (L2E_CUDA_EMULATE_SCHEDULE): unset or "rounds", every
// ready thread in turn each round, so that all of a block reach a meeting point before any passes one;
// "warps:<seed>", one warp at a time: a lead warp alone runs, round after round, until none of its
// threads is ready (all wait at __syncthreads, poll an mbarrier, or have exited), then a warp picked
// from those with a ready thread by a generator seeded with <seed> and the block's serial leads. Both
// are legal CUDA schedules; the second lets a warp run as far ahead of the others as the kernel's
// synchronisation allows, so that a missing barrier or mbarrier wait shows as a wrong result. Under it
// an mbarrier arrival also hands the SM to a warp drawn from those with a ready or polling thread
// (offer_switch), so that a waiter may run the moment a phase completes while the arriving warp has
// not yet done what follows its arrival (a stage released before its reads completed shows), and a
// bulk tensor copy lands when issued (ptx_sm90.cpp; under "rounds" only when its mbarrier is waited
// on, so that a read before the wait shows). Both are legal: a copy completes any time after its issue.
// A value that is neither leaves `error` set: the device is then not usable (cudaGetDeviceCount fails
// with it, and so does every launch), so that a mistyped setting is an error a caller can report rather
// than a run under a schedule nobody asked for.
struct Schedule {
  bool warps = false;
  uint64_t seed = 0;
  std::string error;
};
const Schedule& schedule() {
  static const Schedule chosen = [] {
    Schedule out;
    const char* v = std::getenv("L2E_CUDA_EMULATE_SCHEDULE");
    if (!v || !*v || std::strcmp(v, "rounds") == 0) return out;
    char* end = nullptr;
    if (std::strncmp(v, "warps:", 6) == 0) {
      out.seed = std::strtoull(v + 6, &end, 10);
      if (end != v + 6 && *end == 0) {
        out.warps = true;
        return out;
      }
    }
    out.error = std::string("the CUDA emulation's L2E_CUDA_EMULATE_SCHEDULE='") + v +
                "' is neither 'rounds' nor 'warps:<seed>'";
    return out;
  }();
  return chosen;
}

// The device the emulation reports (L2E_CUDA_EMULATE_DEVICE=<compute capability>, default 9.0): its
// compute capability and the most dynamic shared memory a block may opt into, from the CUDA C++
// Programming Guide's table of compute capabilities (8.0: 163 KB; 8.6, 8.9: 99 KB; 9.0: 227 KB), so
// that the kernels' choices for other GPUs (the sm80 attention where sm_90a cannot run, tile shapes
// that fit 99 KB) run in tests too. Any other value makes the device unusable, naming the setting.
struct Arch {
  int major = 9, minor = 0;
  size_t max_dynamic_shared = 227 * 1024;
  std::string error;
};
const Arch& arch() {
  static const Arch chosen = [] {
    Arch out;
    const char* v = std::getenv("L2E_CUDA_EMULATE_DEVICE");
    if (!v || !*v) return out;
    const struct { const char* name; int major, minor; size_t kib; } known[] = {
        {"8.0", 8, 0, 163}, {"8.6", 8, 6, 99}, {"8.9", 8, 9, 99}, {"9.0", 9, 0, 227}};
    for (const auto& k : known)
      if (std::strcmp(v, k.name) == 0) {
        out.major = k.major;
        out.minor = k.minor;
        out.max_dynamic_shared = k.kib * 1024;
        return out;
      }
    out.error = std::string("the CUDA emulation's L2E_CUDA_EMULATE_DEVICE='") + v + "' is none of 8.0, 8.6, 8.9, 9.0";
    return out;
  }();
  return chosen;
}

// A setting that makes the emulated device unusable, or "".
std::string setting_error() {
  for (const std::string* e : {&schedule().error, &arch().error, &math_setting_error()})
    if (!e->empty()) return *e;
  return "";
}

uint64_t splitmix64(uint64_t& x) {  // the generator of the "warps" schedule
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Runs one block; false (with W.error) when it failed.
bool run_block(uint3 block_idx, dim3 block, dim3 grid) {
  Worker& w = W;
  const unsigned n = block.x * block.y * block.z;
  while (w.fibers.size() < n)
    if (!new_fiber()) {
      w.error = "cannot map fiber stacks";
      return false;
    }
  const unsigned warps = (n + 31) / 32;
  w.slots.assign(size_t(warps) * 64, WarpSlot{});
  if (w.warp_gen.size() < warps) w.warp_gen.resize(warps, 0);
  std::memset(w.smem, kFreshShared, w.smem_size);  // uninitialised shared memory reads as NaN
  poison(w.static_smem + kStaticShared - w.static_used, w.static_used);  // static arrays: fresh ones
  w.static_used = 0;
  w.static_bytes = 0;
  w.static_sites.clear();
  w.block_serial++;
  for (unsigned i = 0; i < n; i++) {
    Fiber* f = w.fibers[i].get();
    f->state = kReady;
    f->phase = 0;
    f->linear = i;
    f->c.thread_idx = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    f->c.block_idx = block_idx;
    f->c.block_dim = block;
    f->c.grid_dim = grid;
  }
  auto abandon = [&] {  // fibers left mid-kernel restart from scratch next time
    for (unsigned i = 0; i < n; i++)
      if (w.fibers[i]->state != kDone) w.fibers[i]->fresh = true;
    return false;
  };
  const Schedule& sched = schedule();
  uint64_t rng = sched.seed ^ (w.block_serial * 0xd1342543de82ef95ull);
  unsigned lead = 0;  // the "warps" schedule's running warp
  w.lead_switch = false;
  auto has = [&](unsigned wi, bool polling_too) {  // a ready (or polling) thread in warp wi
    for (unsigned i = wi * 32; i < std::min(n, wi * 32 + 32); i++)
      if (w.fibers[i]->state == kReady || (polling_too && w.fibers[i]->state == kSpin)) return true;
    return false;
  };
  for (;;) {
    const uint64_t progress_before = w.progress;
    bool ran_ready = false;  // a thread that was not polling ran this round
    unsigned first = 0, last = n;  // the threads this round runs
    if (sched.warps) {
      const bool offered = w.lead_switch;  // after an arrival a polling warp may take the SM too
      w.lead_switch = false;
      if (offered || !has(lead, false)) {
        std::vector<unsigned> pool;
        for (unsigned wi = 0; wi < warps; wi++)
          if (has(wi, offered)) pool.push_back(wi);
        if (!pool.empty()) lead = pool[splitmix64(rng) % pool.size()];
      }
      if (has(lead, false) || (offered && has(lead, true))) {  // else every poller polls, as in a round
        first = lead * 32;
        last = std::min(n, first + 32);
      }
    }
    for (unsigned i = first; i < last; i++) {
      Fiber* f = w.fibers[i].get();
      if (f->state != kReady && f->state != kSpin) continue;
      ran_ready = ran_ready || f->state == kReady;
      resume(w, f);
      if (w.failed) return abandon();
    }
    bool released = false;
    for (unsigned wi = 0; wi < warps; wi++) {
      const unsigned lo = wi * 32, hi = std::min(n, lo + 32);
      unsigned waiting = 0, polling = 0;
      const char* op = nullptr;
      for (unsigned i = lo; i < hi; i++) {
        Fiber* f = w.fibers[i].get();
        if (f->state == kSpin) polling++;
        if (f->state != kWarpWait) continue;
        if (op && std::strcmp(op, f->op) != 0) {
          w.error = std::string("lanes of warp ") + std::to_string(wi) + " meet at different warp-synchronous operations (" +
                    op + " and " + f->op + ")";
          return abandon();
        }
        op = f->op;
        waiting++;
      }
      if (waiting == 0) continue;
      if (waiting < hi - lo) {
        if (polling > 0) continue;  // the others still poll a wait: they may come
        w.error = std::string(op) + " reached by " + std::to_string(waiting) + " of the " + std::to_string(hi - lo) +
                  " lanes of warp " + std::to_string(wi) + " (the others exited or wait at __syncthreads)";
        return abandon();
      }
      for (unsigned i = lo; i < hi; i++) w.fibers[i]->state = kReady;
      w.warp_gen[wi]++;
      released = true;
    }
    if (released) continue;
    unsigned at_barrier = 0, done = 0, polling = 0, ready = 0;
    for (unsigned i = 0; i < n; i++) {
      if (w.fibers[i]->state == kReady) ready++;
      else if (w.fibers[i]->state == kBlockWait) at_barrier++;
      else if (w.fibers[i]->state == kDone) done++;
      else if (w.fibers[i]->state == kSpin) polling++;
    }
    if (ready > 0) continue;  // threads the "warps" schedule has not run yet
    if (polling > 0) {
      if (!ran_ready && w.progress == progress_before && first == 0 && last == n) {
        w.error = "deadlock: " + std::to_string(polling) + " of " + std::to_string(n) +
                  " threads poll a wait (mbarrier) that nothing can complete any more";
        return abandon();
      }
      continue;
    }
    if (at_barrier == 0) {  // every thread finished
      if (const char* why = warpgroups_unequal()) {
        w.error = why;
        return false;
      }
      return true;
    }
    if (done > 0) {
      w.error = "__syncthreads reached by " + std::to_string(at_barrier) + " of " + std::to_string(n) +
                " threads (the others exited)";
      return abandon();
    }
    for (unsigned i = 0; i < n; i++) w.fibers[i]->state = kReady;
  }
}

std::map<const void*, int> g_max_smem;

}  // namespace

// ---- device side ----
unsigned lane_id() { return self()->linear & 31u; }
unsigned warp_id() { return self()->linear / 32u; }
uint64_t warp_generation() {
  const Fiber* f = self();
  return f->w->warp_gen[f->linear / 32u];
}

void* warp_scratch(size_t bytes) {
  const Fiber* f = self();
  Worker& w = *f->w;
  const size_t stride = round_up(bytes, 64);
  const size_t need = stride * (f->linear / 32u + 1);
  if (w.scratch.size() < need) w.scratch.resize(need, char(0xff));
  return w.scratch.data() + stride * (f->linear / 32u);
}

[[noreturn]] void fail(const char* what) {
  Fiber* f = W.cur;
  if (!f) {
    fprintf(stderr, "l2e CUDA emulation: %s (outside a kernel)\n", what);
    abort();
  }
  W.failed = true;
  W.error = what;
  f->state = kFailed;
  yield(f);
  abort();  // never resumed
}

uint64_t block_serial() { return W.block_serial; }
KernelCensus& running_census() { return self()->w->census; }
void note_progress() { W.progress++; }
void spin() {
  Fiber* f = self();
  f->state = kSpin;
  yield(f);
}
bool runs_ahead() { return schedule().warps; }
void offer_switch() {
  if (!schedule().warps) return;
  Fiber* f = self();
  f->w->lead_switch = true;
  f->state = kReady;
  yield(f);
}

void syncthreads() {
  Fiber* f = self();
  f->state = kBlockWait;
  yield(f);
}

const WarpSlot* warp_exchange(unsigned mask, const char* op, const WarpSlot& in) {
  Fiber* f = self();
  const unsigned n = f->c.block_dim.x * f->c.block_dim.y * f->c.block_dim.z;
  const unsigned w = f->linear / 32, lanes = std::min(32u, n - w * 32);
  const unsigned full = lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
  if (mask != full) {
    static thread_local std::string msg;
    msg = std::string(op) + " with a partial mask (the emulation requires every lane of the warp)";
    fail(msg.c_str());
  }
  WarpSlot* slots = &f->w->slots[(size_t(w) * 2 + f->phase) * 32];
  slots[f->linear & 31u] = in;
  f->op = op;
  f->state = kWarpWait;
  yield(f);
  f->phase ^= 1u;  // two slot sets alternate: nobody writes these again before everyone has read them
  return slots;
}

void* dynamic_shared() { return self()->w->smem; }

void* static_shared(const void* site, size_t bytes, size_t align) {
  Worker& w = *self()->w;
  for (const auto& [s, p] : w.static_sites)
    if (s == site) return p;
#ifdef L2E_EMU_ASAN
  constexpr size_t kRedzone = 32;  // poisoned bytes between two arrays
#else
  constexpr size_t kRedzone = 0;
#endif
  const size_t used = round_up(w.static_used + bytes, align < 16 ? 16 : align);
  if (used > kStaticShared) {
    static thread_local std::string msg;
    msg = "static shared memory of the block exceeds " + std::to_string(kStaticShared) + " bytes";
    fail(msg.c_str());
  }
  // A block's static and dynamic shared memory share one limit: cudaFuncAttributeMaxDynamicSharedMemorySize
  // "The sum of this value and the function attribute sharedSizeBytes cannot exceed the device attribute
  // cudaDevAttrMaxSharedMemoryPerBlockOptin" (CUDA Runtime API); a block over it does not launch. The
  // static size is known here only as the block declares its arrays, so the launch fails from the block.
  const size_t total = round_up(w.static_bytes + bytes, align < 16 ? 16 : align);
  if (total + w.smem_size > max_dynamic_shared()) {
    static thread_local char msg[200];
    snprintf(msg, sizeof msg, "static (%zu bytes) and dynamic (%zu bytes) shared memory of the block exceed the device's %zu bytes",
             total, w.smem_size, max_dynamic_shared());
    fail(msg);
  }
  w.static_bytes = total;
  char* p = w.static_smem + kStaticShared - used;  // the first array ends at the guard page
  unpoison(p, bytes);
  std::memset(p, kFreshShared, bytes);  // uninitialised shared memory reads as NaN
  w.static_used = std::min(kStaticShared, used + kRedzone);
  w.static_sites.emplace_back(site, p);
  return p;
}
size_t dynamic_shared_size() { return self()->w->smem_size; }

size_t shared_offset(const void* p) {
  const Worker& w = *self()->w;
  const char* c = static_cast<const char*>(p);
  if (c < w.smem || c >= w.smem + w.smem_size) fail("address outside the block's shared memory (cvta.to.shared)");
  return size_t(c - w.smem);
}

// PTX ISA, "atom": "Current implementation of atom.add.f32 on global memory flushes subnormal inputs and
// results to sign-preserving zero; whereas atom.add.f32 on shared memory supports subnormal inputs and
// results and doesn't flush them to zero" (red.add.f32 says the same).
namespace {
float flush_subnormal(float x) { return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x; }
bool in_shared(const void* p) {
  const Worker& w = *self()->w;
  const char* c = static_cast<const char*>(p);
  return (c >= w.smem && c < w.smem + w.smem_size) || (w.static_smem && c >= w.static_smem && c < w.static_smem + kStaticShared);
}
}  // namespace

float atomic_add(float* p, float v) {
  const bool ftz = !in_shared(p);
  if (ftz) v = flush_subnormal(v);
  float old, want;
  __atomic_load(p, &old, __ATOMIC_RELAXED);
  do want = ftz ? flush_subnormal(flush_subnormal(old) + v) : old + v;
  while (!__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
  return old;
}

int atomic_add(int* p, int v) {
  // two's complement wrap, as the hardware adds
  unsigned* u = reinterpret_cast<unsigned*>(p);
  return int(__atomic_fetch_add(u, unsigned(v), __ATOMIC_RELAXED));
}

int atomic_cas(int* p, int compare, int v) {
  __atomic_compare_exchange_n(p, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
  return compare;  // the old value: `compare` itself when they were equal, else what was there
}

cudaError_t set_max_dynamic_shared(const void* kernel, int bytes) {
  if (bytes < 0 || size_t(bytes) > max_dynamic_shared())
    return set_error(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(bytes) +
                                                " bytes of dynamic shared memory exceed the device's limit");
  std::lock_guard<std::mutex> lock(g_mem_mu);
  g_max_smem[kernel] = bytes;
  return cudaSuccess;
}

void Launch::execute(const void* fn, const Body& body) const {
  const std::string name = name_;
  if (sticky_error() != cudaSuccess) return;  // the launch fails with the device's error
  const unsigned n = block_.x * block_.y * block_.z;
  if (n == 0 || n > 1024 || block_.z > 64 || grid_.x == 0 || grid_.y == 0 || grid_.z == 0 || grid_.y > 65535 ||
      grid_.z > 65535) {
    set_error(cudaErrorInvalidConfiguration, "invalid configuration argument: kernel " + name + " launched with grid " +
                                                 dims(uint3{grid_.x, grid_.y, grid_.z}) + " and block " +
                                                 dims(uint3{block_.x, block_.y, block_.z}));
    return;
  }
  if (smem_ > max_dynamic_shared()) {
    set_error(cudaErrorInvalidValue, "kernel " + name + ": " + std::to_string(smem_) +
                                         " bytes of dynamic shared memory exceed the device's limit");
    return;
  }
  // A kernel's dynamic shared memory is bounded by its cudaFuncAttributeMaxDynamicSharedMemorySize, 48 KiB
  // unless raised by cudaFuncSetAttribute (CUDA C++ Programming Guide, compute capabilities 8.x and 9.x:
  // over 48 KiB a block needs that explicit opt-in); a launch past it fails.
  {
    int limit = -1;
    {
      std::lock_guard<std::mutex> lock(g_mem_mu);
      auto it = g_max_smem.find(fn);
      if (it != g_max_smem.end()) limit = it->second;
    }
    const size_t allowed = limit < 0 ? kDefaultDynamicShared : size_t(limit);
    if (smem_ > allowed) {
      set_error(cudaErrorInvalidValue,
                "kernel " + name + ": " + std::to_string(smem_) + " bytes of dynamic shared memory, over its limit of " +
                    std::to_string(allowed) +
                    (limit < 0 ? " (the default: raise it with cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize))"
                               : " (set by cudaFuncSetAttribute)"));
      return;
    }
  }
  if (!setting_error().empty()) {
    set_error(cudaErrorInvalidValue, "kernel " + name + ": " + setting_error());
    return;
  }
  (void)stream_;
  install_segv_handler();
  if (!ensure_shared(smem_)) {
    set_error(cudaErrorMemoryAllocation, "kernel " + name + ": cannot map shared memory");
    return;
  }
  static const char* const inject = std::getenv("L2E_CUDA_EMULATE_FAIL");
  if (inject && name == inject) {
    defer_error(cudaErrorLaunchFailure, "kernel " + name + " failed in block (0,0,0): fault injected by L2E_CUDA_EMULATE_FAIL");
    return;
  }
  W.body = &body;
  W.call = [](const void* b) { (*static_cast<const Body*>(b))(); };
  W.kernel = name_;
  W.failed = false;
  for (unsigned z = 0; z < grid_.z; z++)
    for (unsigned y = 0; y < grid_.y; y++)
      for (unsigned x = 0; x < grid_.x; x++) {
        const uint3 b{x, y, z};
        if (!run_block(b, block_, grid_)) {
          defer_error(cudaErrorLaunchFailure, "kernel " + name + " failed in block " + dims(b) + ": " + W.error);
          W.kernel = nullptr;
          W.failed = false;
          census_launch_done(name_, W.census);
          return;
        }
      }
  W.kernel = nullptr;
  census_launch_done(name_, W.census);
}

size_t max_dynamic_shared() { return arch().max_dynamic_shared; }

}  // namespace emu
}  // namespace l2e

using namespace l2e::emu;

// ---- runtime API ----
cudaError_t cudaGetDeviceCount(int* n) {
  *n = 0;
  if (!setting_error().empty()) return set_error(cudaErrorInvalidValue, setting_error());
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidValue, "invalid device ordinal");
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return set_error(cudaErrorInvalidValue, "invalid device ordinal");
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "CUDA emulation on the CPU");
  prop->major = arch().major;
  prop->minor = arch().minor;
  prop->totalGlobalMem = kNominalMemory;
  prop->sharedMemPerBlockOptin = max_dynamic_shared();
  prop->multiProcessorCount = 1;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (const cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  std::lock_guard<std::mutex> lock(g_mem_mu);
  *total_bytes = kNominalMemory;
  *free_bytes = g_live > kNominalMemory ? 0 : kNominalMemory - g_live;
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  if (const cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  const size_t ps = page_size();
  const size_t user = round_up(bytes == 0 ? 1 : bytes, 16);
  const size_t data = round_up(user, ps);
  std::lock_guard<std::mutex> lock(g_mem_mu);
  if (g_live + user > kNominalMemory) return set_error(cudaErrorMemoryAllocation, "out of memory");
  void* m = mmap(nullptr, data + ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return set_error(cudaErrorMemoryAllocation, "out of memory");
  char* map = static_cast<char*>(m);
  mprotect(map + data, ps, PROT_NONE);  // reading past the end faults
  char* u = map + data - user;
  std::memset(u, 0xff, user);  // NaN as f32 and as bf16
  poison(map, data - user);    // the bytes in front, which no guard page covers
  g_allocs[reinterpret_cast<uintptr_t>(u)] = Allocation{map, data + ps, user};
  g_live += user;
  *p = u;
  return cudaSuccess;
}

cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  count_synchronize();
  std::lock_guard<std::mutex> lock(g_mem_mu);
  auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_allocs.end()) return set_error(cudaErrorInvalidValue, "cudaFree of a pointer cudaMalloc did not return");
  unpoison(it->second.map, it->second.map_bytes - page_size());  // the pages may be mapped again
  munmap(it->second.map, it->second.map_bytes);  // a use after free faults
  g_live -= it->second.bytes;
  g_allocs.erase(it);
  return synchronized_error();  // it synchronises; freed all the same (a real context's memory goes with the process)
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
  if (const cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  if (bytes == 0) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (dst_dev && !find_range(dst, bytes))
      return set_error(cudaErrorInvalidValue, "cudaMemcpy: destination range is not inside one device allocation");
    if (src_dev && !find_range(src, bytes))
      return set_error(cudaErrorInvalidValue, "cudaMemcpy: source range is not inside one device allocation");
  }
  if (kind == cudaMemcpyDeviceToHost) count_device_to_host();
  if (kind == cudaMemcpyHostToDevice) count_upload(src, bytes);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t) {
  if (const cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  if (bytes == 0) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(g_mem_mu);
    if (!find_range(dst, bytes))
      return set_error(cudaErrorInvalidValue, "cudaMemset: range is not inside one device allocation");
  }
  std::memset(dst, value, bytes);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  *s = nullptr;
  if (const cudaError_t e = sticky_error(); e != cudaSuccess) return e;
  *s = reinterpret_cast<cudaStream_t>(new char(0));
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete reinterpret_cast<char*>(s);
  return sticky_error();
}
// Every operation has completed when it returns: synchronisation has nothing to wait for but reports
// the error of a kernel that failed since the last one.
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  count_synchronize();
  return synchronized_error();
}
cudaError_t cudaDeviceSynchronize() {
  count_synchronize();
  return synchronized_error();
}

// Resets this thread's last error, but a failed kernel's error stays (see g_async).
cudaError_t cudaGetLastError() {
  const cudaError_t e = tl_last;
  tl_last = cudaSuccess;
  const cudaError_t s = sticky_error();
  tl_last = cudaSuccess;
  return s != cudaSuccess ? s : e;
}

const char* cudaGetErrorString(cudaError_t e) {
  if (e != cudaSuccess && e == tl_message_code) return tl_message.c_str();
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}
