// attend kernels: element-wise transcendental functions over arrays.
//
// Each function is written once over Google Highway's portable vectors (vec_math.cpp), compiled
// for every instruction set attend targets (SSE4, AVX2, AVX-512 on x86) and chosen at run time
// for this CPU (see isa.h). `reference::` computes the same approximations one value at a time:
// it is the test oracle and handles the last n % lanes values. Accuracy against libm, on every
// instruction set: exp within 2 ulp over [-87, 88]; tanh within 3e-7 absolute and 1e-6 relative;
// sigmoid within 3e-7 absolute; log within 2 ulp (denormals included); logaddexp within 3e-7
// absolute + 2 ulp.
#pragma once

#include <cstdint>

namespace attend::kernels {

// y[i] = f(x[i]) for i < n; x and y may be the same array.
void vexp(const float* x, float* y, int64_t n);
void vtanh(const float* x, float* y, int64_t n);
void vsigmoid(const float* x, float* y, int64_t n);
// Natural log: -inf at 0, NaN below 0, +inf at +inf.
void vlog(const float* x, float* y, int64_t n);
// y[i] = exp(x[i] - shift), exactly 0 where x[i] = -inf; returns the sum of y (the online
// softmax's inner step). `shift` must be finite.
float vexp_shifted_sum(const float* x, float shift, float* y, int64_t n);
// max of x[0, n): -inf for n = 0; NaN if any x is NaN.
float vmax(const float* x, int64_t n);
// y[i] = log(exp(a[i]) + exp(b[i])) for finite or -inf a, b (-inf when both are); y may be a or b.
void vlogaddexp(const float* a, const float* b, float* y, int64_t n);

namespace reference {
void vexp(const float* x, float* y, int64_t n);
void vtanh(const float* x, float* y, int64_t n);
void vsigmoid(const float* x, float* y, int64_t n);
void vlog(const float* x, float* y, int64_t n);
float vexp_shifted_sum(const float* x, float shift, float* y, int64_t n);
float vmax(const float* x, int64_t n);
void vlogaddexp(const float* a, const float* b, float* y, int64_t n);
}  // namespace reference

}  // namespace attend::kernels
