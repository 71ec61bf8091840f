// attend: how many threads the library uses (matrix products in OpenBLAS, and the pool that
// spreads attention kernels over batch, heads and tiles). Results for a given seed depend on
// the thread count only where documented (training is reproducible per thread count).
#pragma once

namespace attend {

// 1 <= n <= max_threads(); throws std::invalid_argument naming the range otherwise. One thread
// is the default.
void set_threads(int n);
// 4 x the hardware threads, at most 1,024: more only costs memory and start-up time.
int max_threads();

}  // namespace attend
