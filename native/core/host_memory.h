#pragma once
// Host memory checks made before a large allocation, so a model or batch that does not fit is a clear
// error naming what was asked and what is available, not an abort or the kernel's OOM killer; and
// the large allocations themselves (weights, activations, load and GEMM scratch).
#include <cstddef>
#include <cstdint>
#include <string>

namespace l2e {

// Bytes of host memory available now: MemAvailable of /proc/meminfo (else free pages), capped by
// L2E_HOST_MEMORY_LIMIT_MB when set (a user's budget; also how tests make a small limit). 0 when unknown.
uint64_t host_memory_available();

// Throws Error("<what> needs X of host memory but only Y is available<advice>") when `bytes` exceeds
// what is available (plus `reusable`: memory this process holds free for the purpose); does nothing
// when the amount available is unknown.
void check_host_memory(uint64_t bytes, const std::string& what, const std::string& advice = "", uint64_t reusable = 0);

// "1.50 GiB", "12.0 MiB", "512 bytes"
std::string format_bytes(uint64_t bytes);

// 64-byte aligned host memory for our large buffers. From kHostMapBytes up it is mapped from the
// kernel on its own (mmap) and given back whole when freed (munmap): glibc's malloc serves such sizes
// from its arenas once a freed block has raised its mmap threshold (up to 32 MiB: a 16 MiB load
// buffer does it), and a freed activation or scratch buffer then stays resident in an arena of
// whichever thread freed it (measured at the 600M shape in int8: peak RSS 1.19x of the weights
// through malloc, 1.15x with the threshold pinned). Smaller sizes, and sanitizer builds (so ASan
// still checks every access), use aligned_alloc. host_free takes the size given to host_alloc.
// Throws Error naming `what` when the memory cannot be had.
constexpr size_t kHostMapBytes = size_t(1) << 20;
// The kernel's transparent huge page size (2 MiB on x86-64), or 0 where it has none to give: mapped
// buffers of at least this size start on its boundary and are advised for huge pages (host_memory.cpp).
size_t huge_page_bytes();
void* host_alloc(size_t bytes, const char* what);
// Whether host_alloc gives `bytes` a mapping of its own (false below kHostMapBytes and in sanitizer builds).
bool host_alloc_maps(size_t bytes);
void host_free(void* p, size_t bytes);

// One host_alloc'd buffer, freed with its owner. reserve() grows it (the contents are not kept).
class HostBuffer {
 public:
  HostBuffer() = default;
  HostBuffer(size_t bytes, const char* what) { reserve(bytes, what); }
  ~HostBuffer() { host_free(p_, n_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  void* reserve(size_t bytes, const char* what) {
    if (bytes > n_) {
      host_free(p_, n_);
      p_ = nullptr;
      n_ = 0;
      p_ = host_alloc(bytes, what);
      n_ = bytes;
    }
    return p_;
  }
  template <typename T>
  T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace l2e
