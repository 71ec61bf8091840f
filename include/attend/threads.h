// attend: how many threads the library uses (matrix products in OpenBLAS, and the pool that
// spreads attention kernels over batch, heads and tiles). Results for a given seed depend on
// the thread count only where documented (training is reproducible per thread count).
#pragma once

namespace attend {

// n >= 1; throws std::invalid_argument otherwise. One thread is the default.
void set_threads(int n);

}  // namespace attend
