// attend kernels: row softmax with a 0/1 mask. Raw pointers, no allocation.
#pragma once

#include <cstdint>

namespace attend::kernels {

// y[r, :] = softmax(x[r, :]) over positions with mask[r / rows_per_mask, s] != 0 (mask may be null).
// log_output: write log-softmax instead (-inf at masked positions).
void softmax_rows(const float* x, const float* mask, int64_t rows, int64_t rows_per_mask, int64_t S, float* y,
                  bool log_output);

}  // namespace attend::kernels
