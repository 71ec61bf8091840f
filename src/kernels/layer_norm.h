// attend kernels: layer normalisation over the last dimension, forward and backward, fast and
// reference. Raw pointers, no allocation. Rows of C values: x, y, xhat, dy, dx [rows, C];
// gamma, beta, dgamma, dbeta [C]; rstd [rows].
//
// The fast path sums in float, in 16 independent lanes over blocks of 256 values, the blocks
// in double: it vectorises, and its error stays that of a 16-term float sum whatever C is. The
// reference sums every value in double; tests/layer_norm_kernel_test.cpp holds the two together.
#pragma once

#include <cstdint>

namespace attend::kernels {

// y = xhat * gamma + beta with xhat = (x - mean) / sqrt(var + eps); saves xhat and rstd.
void layer_norm_forward(int64_t rows, int64_t C, const float* x, const float* gamma, const float* beta, float eps,
                        float* y, float* xhat, float* rstd);
// dx += rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with dxhat = dy * gamma;
// dgamma += sum_rows dy * xhat; dbeta += sum_rows dy. Any of dx, dgamma, dbeta may be null.
void layer_norm_backward(int64_t rows, int64_t C, const float* dy, const float* xhat, const float* rstd,
                         const float* gamma, float* dx, float* dgamma, float* dbeta);

void layer_norm_forward_reference(int64_t rows, int64_t C, const float* x, const float* gamma, const float* beta,
                                  float eps, float* y, float* xhat, float* rstd);
void layer_norm_backward_reference(int64_t rows, int64_t C, const float* dy, const float* xhat, const float* rstd,
                                   const float* gamma, float* dx, float* dgamma, float* dbeta);

}  // namespace attend::kernels
