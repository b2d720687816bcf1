#include "core/host_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/tensor.h"

namespace l2e {

uint64_t host_memory_available() {
  uint64_t avail = 0;
  if (FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      unsigned long long kb = 0;
      if (std::sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
        avail = uint64_t(kb) * 1024;
        break;
      }
    }
    std::fclose(f);
  }
  if (avail == 0) {
    const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0) avail = uint64_t(pages) * uint64_t(page);
  }
  const char* limit = std::getenv("L2E_HOST_MEMORY_LIMIT_MB");
  if (limit && *limit) {  // set and not empty
    char* end = nullptr;
    const unsigned long long mb = std::strtoull(limit, &end, 10);
    // a budget that does not read as a number is said, not ignored (the user meant a limit)
    if (end == limit || *end != '\0' || limit[0] == '-' || mb > (uint64_t(1) << 43)) {
      throw Error(std::string("L2E_HOST_MEMORY_LIMIT_MB must be a whole number of MiB, got '") + limit + "'");
    }
    // 0 read as "unknown" below, and so as no budget at all
    if (mb == 0) throw Error("L2E_HOST_MEMORY_LIMIT_MB must be at least 1 MiB, got '0' (unset it for no budget)");
    const uint64_t cap = uint64_t(mb) << 20;
    if (avail == 0 || cap < avail) avail = cap;
  }
  return avail;
}

std::string format_bytes(uint64_t bytes) {
  char buf[64];
  if (bytes >= (uint64_t(1) << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(uint64_t(1) << 30));
  else if (bytes >= (uint64_t(1) << 20)) std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / double(uint64_t(1) << 20));
  else std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
  return buf;
}

namespace {
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMapLarge = false;
#else
constexpr bool kMapLarge = true;
#endif
size_t rounded64(size_t bytes) { return bytes < 64 ? 64 : (bytes + 63) / 64 * 64; }
}  // namespace

size_t huge_page_bytes() {
  static const size_t bytes = [] {
    unsigned long long v = 0;
    if (FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r")) {
      if (std::fscanf(f, "%llu", &v) != 1) v = 0;
      std::fclose(f);
    }
    const long page = sysconf(_SC_PAGESIZE);
    return page > 0 && v > size_t(page) && v % size_t(page) == 0 ? size_t(v) : size_t(0);
  }();
  return bytes;
}

namespace {
// n bytes mapped on their own. From one huge page up, the mapping starts on a huge page boundary (less
// than a huge page more is mapped, and the ends are given back) and asks for huge pages: a buffer then
// faults in 2 MiB at a time, not 4 KiB. With transparent huge pages on "madvise" (Debian's and
// Ubuntu's default) an unaligned or unadvised mapping gets none; on a 2-core VM, first touching the
// 600M shape's 2.2 GB of fp32 weights took 15.5 s in 4 KiB pages, 10 s in huge pages from an unaligned
// start, 0.4-3.9 s aligned (a later pass over it: 0.2-0.35 s in each).
void* map_large(size_t n) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE)), huge = huge_page_bytes();
  const size_t align = huge != 0 && n >= huge ? huge : page;
  const size_t kept = (n + page - 1) / page * page, mapped = kept + align - page;
  void* raw = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // page-aligned
  if (raw == MAP_FAILED) return nullptr;
  char* const base = static_cast<char*>(raw);
  char* const p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + align - 1) / align * align);
  if (p > base) ::munmap(base, size_t(p - base));
  if (base + mapped > p + kept) ::munmap(p + kept, size_t(base + mapped - (p + kept)));
#ifdef MADV_HUGEPAGE
  if (align == huge) ::madvise(p, kept, MADV_HUGEPAGE);  // advice only: a kernel without huge pages to give keeps 4 KiB ones
#endif
  return p;
}
}  // namespace

bool host_alloc_maps(size_t bytes) { return kMapLarge && rounded64(bytes) >= kHostMapBytes; }

void* host_alloc(size_t bytes, const char* what) {
  const size_t n = rounded64(bytes);
  void* p = nullptr;
  if (host_alloc_maps(n)) {
    p = map_large(n);  // host_free's munmap(p, n) gives back exactly what is kept
  } else {
    p = std::aligned_alloc(64, n);
  }
  if (!p) throw Error(std::string("out of host memory allocating ") + format_bytes(n) + " for " + what);
  return p;
}

void host_free(void* p, size_t bytes) {
  if (!p) return;
  const size_t n = rounded64(bytes);
  if (host_alloc_maps(n)) ::munmap(p, n);
  else std::free(p);
}

void check_host_memory(uint64_t bytes, const std::string& what, const std::string& advice, uint64_t reusable) {
  uint64_t avail = host_memory_available();
  if (avail == 0) return;
  avail += reusable;
  if (bytes <= avail) return;
  throw Error(what + " needs " + format_bytes(bytes) + " of host memory but only " + format_bytes(avail) + " is available" + advice);
}

}  // namespace l2e
