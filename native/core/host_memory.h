#pragma once
// Host memory checks made before a large allocation, so a model or batch that does not fit is a clear
// error naming what was asked and what is available, not an abort or the kernel's OOM killer.
#include <cstdint>
#include <string>

namespace l2e {

// Bytes of host memory available now: MemAvailable of /proc/meminfo (else free pages), capped by
// L2E_HOST_MEMORY_LIMIT_MB when set (a user's budget; also how tests make a small limit). 0 when unknown.
uint64_t host_memory_available();

// Throws Error("<what> needs X of host memory but only Y is available<advice>") when `bytes` exceeds
// what is available; does nothing when the amount available is unknown.
void check_host_memory(uint64_t bytes, const std::string& what, const std::string& advice = "");

// "1.50 GiB", "12.0 MiB", "512 bytes"
std::string format_bytes(uint64_t bytes);

}  // namespace l2e
