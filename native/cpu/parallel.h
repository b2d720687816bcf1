// A small persistent thread pool for the CPU backend: parallel_for splits [0, n) into one contiguous
// range per worker (the caller's thread is one of them). Nested calls run serially.
#pragma once
#include <cstdint>
#include <functional>

namespace l2e {

// Number of threads used (L2E_NUM_THREADS from 1 to 256, else std::thread::hardware_concurrency());
// a value that is not a whole number from 0 to 256 throws Error naming it.
int num_threads();
// Microseconds a pool thread spins for its next hand-off before it sleeps (L2E_CPU_SPIN_US, default 50;
// 0 sleeps at once); a value that is not a whole number from 0 to 100000 throws Error naming it.
int spin_us();
// fn(begin, end, thread_index) over disjoint ranges covering [0, n); grain = minimum range size.
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

}  // namespace l2e
