// attend kernels: the one way work is spread over threads. Kernels never create threads.
//
// parallel_for(n, fn) calls fn(i, thread) once for every i in [0, n), with `thread` in
// [0, num_threads()) naming the thread (for per-thread scratch), on the caller and the pool's
// workers, which take items from a shared counter (so uneven items, e.g. causal attention
// tiles, balance themselves). Workers sleep on a condition variable between calls: no
// spin-waiting. Small work runs inline: `work` (the loop's arithmetic in floating-point
// operations, an estimate) under kMinParallelWork, n == 1, a pool of one thread, or a call from
// inside another parallel_for. OpenBLAS is kept to one thread while items run on the pool.
// Each item must write only its own outputs, so results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <functional>

namespace attend::kernels {

void set_num_threads(int n);  // the caller counts as one; n >= 1
int num_threads();

// Below this many operations waking a worker costs more than it saves (a wake-up takes 10-50 us,
// milliseconds on a busy host; 4 MFLOP is ~40 us of one core): one decoder step's attention at
// batch 1 ran at half speed on two threads.
constexpr double kMinParallelWork = 4e6;

void parallel_for(int64_t n, const std::function<void(int64_t item, int thread)>& fn, double work);

// fn(begin, end) over [0, n) cut into a few ranges per thread (bounds multiples of `align`), as
// parallel_for items. For loops whose elements are independent: the ranges depend on the thread
// count, so a loop that sums across elements would not give the same numbers on every count.
void parallel_ranges(int64_t n, double work, const std::function<void(int64_t begin, int64_t end)>& fn,
                     int64_t align = 1);

}  // namespace attend::kernels
