// hostMapping(bytes, cycles?) -> {mapped, hugePageBytes, offset, pageOffset, vmaStart, vmaEnd, flags,
// unmappedAfterFree, vmGrowthBytes}: one host_alloc (core/host_memory.h) of `bytes`, described from /proc/self/smaps, then
// host_free'd, for test/host-memory.test.ts; then `cycles` more allocs and frees of that size, and
// vmGrowthBytes the growth of the process's VmSize over them (what a mapping left behind would add). Addresses are relative to the buffer's (offset: its distance past the
// huge-page boundary below it; pageOffset: past the page boundary; vmaStart/vmaEnd: the ends of the
// mapping that holds it, minus the buffer's address; the kernel merges a mapping with a neighbour of
// the same flags, so only one advised for huge pages is sure to be the buffer's alone), so
// they fit a double. mapped: false when host_alloc takes malloc's memory (below kHostMapBytes, or a
// sanitizer build); flags: the mapping's VmFlags ("hg": huge pages advised); unmappedAfterFree:
// no mapping holds the buffer's first byte once it is freed.
// hostPoolCounts() -> {segmentMaps, heldBytes}: the CPU backends' host pools (cpu/host_pool.h), segments
// mapped so far and the bytes their segments hold now, for test/cpu-host-pool.test.ts.
#include <napi.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "addon/registry.h"
#include "core/host_memory.h"
#include "cpu/host_pool.h"

namespace l2e {
namespace {

struct Vma {
  bool found = false;
  uintptr_t start = 0, end = 0;
  std::string flags;
};

// The mapping of /proc/self/smaps that holds address a.
Vma vma_of(uintptr_t a) {
  Vma v;
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return v;
  char line[512];
  bool inside = false;
  while (std::fgets(line, sizeof line, f)) {
    unsigned long long s = 0, e = 0;
    char dash = 0;
    if (std::sscanf(line, "%llx%c%llx ", &s, &dash, &e) == 3 && dash == '-') {
      if (inside) break;  // past the mapping found: its fields are read
      inside = a >= s && a < e;
      if (inside) {
        v.found = true;
        v.start = uintptr_t(s);
        v.end = uintptr_t(e);
      }
    } else if (inside && std::strncmp(line, "VmFlags:", 8) == 0) {
      v.flags = line + 8;
      while (!v.flags.empty() && (v.flags.back() == '\n' || v.flags.back() == ' ')) v.flags.pop_back();
      while (!v.flags.empty() && v.flags.front() == ' ') v.flags.erase(0, 1);
    }
  }
  std::fclose(f);
  return v;
}

// VmSize of /proc/self/status, in bytes (0 when unreadable).
double vm_size() {
  double kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmSize: %lf kB", &kb) == 1) break;
    std::fclose(f);
  }
  return kb * 1024;
}

Napi::Value HostMapping(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "hostMapping(bytes, cycles?)");
  const size_t bytes = size_t(info[0].As<Napi::Number>().Int64Value());
  const int cycles = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0;
  const size_t huge = huge_page_bytes();
  void* p = host_alloc(bytes, "hostMapping");
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const Vma v = vma_of(a);
  // malloc's memory shares its mapping with other blocks; our own mapping starts at the buffer
  const bool mapped = v.found && v.start == a;
  host_free(p, bytes);
  Napi::Object o = Napi::Object::New(env);
  o.Set("mapped", mapped);
  o.Set("hugePageBytes", double(huge));
  o.Set("offset", double(huge ? a % huge : 0));
  o.Set("pageOffset", double(a % uintptr_t(sysconf(_SC_PAGESIZE))));
  o.Set("vmaStart", double(v.start) - double(a));
  o.Set("vmaEnd", double(v.end) - double(a));
  o.Set("flags", v.flags);
  o.Set("unmappedAfterFree", !vma_of(a).found);
  const double before = vm_size();
  for (int i = 0; i < cycles; i++) host_free(host_alloc(bytes, "hostMapping"), bytes);
  o.Set("vmGrowthBytes", vm_size() - before);
  return o;
}

Napi::Value HostPoolCountsValue(const Napi::CallbackInfo& info) {
  const HostPoolCounts c = host_pool_counts();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("segmentMaps", double(c.segment_maps));
  o.Set("heldBytes", double(c.held_bytes));
  return o;
}

void register_host_memory(Napi::Env env, Napi::Object exports) {
  exports.Set("hostMapping", Napi::Function::New(env, HostMapping, "hostMapping"));
  exports.Set("hostPoolCounts", Napi::Function::New(env, HostPoolCountsValue, "hostPoolCounts"));
}

}  // namespace

L2E_REGISTER(host_memory, register_host_memory);

}  // namespace l2e
