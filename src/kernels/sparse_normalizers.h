// attend kernels: sparse alternatives to softmax over the last dimension. Raw pointers, no
// allocation (the caller passes a scratch row of S floats).
#pragma once

#include <cstdint>

namespace attend::kernels {

// Sparsemax (Martins & Astudillo 2016, eq. 2): the Euclidean projection of x onto the simplex,
// p = max(x - tau, 0) with tau from the sorted values (their Algorithm 1).
// Entmax-1.5 (Peters et al. 2019, eq. 10, exact sort-based algorithm): p = max(x/2 - tau, 0)^2.
// Masked positions (mask[r / rows_per_mask, s] == 0) get 0; a fully masked row is all zeros.
void sparsemax_rows(const float* x, const float* mask, int64_t rows, int64_t rows_per_mask, int64_t S, float* y,
                    float* scratch);
void entmax15_rows(const float* x, const float* mask, int64_t rows, int64_t rows_per_mask, int64_t S, float* y,
                   float* scratch);

}  // namespace attend::kernels
