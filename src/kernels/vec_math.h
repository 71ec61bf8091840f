// attend kernels: element-wise transcendental functions over arrays.
//
// An AVX2+FMA implementation (8 floats at a time) chosen at run time when the CPU has it, and a
// scalar reference that computes the same approximation one value at a time (the test oracle;
// `set_vec_math_isa(Isa::kScalar)` forces it). Accuracy against libm: exp within 2 ulp over
// [-87, 88]; tanh within 3e-7 absolute and 1e-6 relative; sigmoid within 3e-7 absolute; log
// within 2 ulp (denormals included); logaddexp within 3e-7 absolute + 2 ulp.
#pragma once

#include <cstdint>

namespace attend::kernels {

enum class Isa { kScalar, kAvx2 };
Isa best_isa();                  // what this CPU supports
Isa vec_math_isa();              // what is in use
void set_vec_math_isa(Isa isa);  // throws std::invalid_argument if the CPU lacks it

// y[i] = f(x[i]) for i < n; x and y may be the same array.
void vexp(const float* x, float* y, int64_t n);
void vtanh(const float* x, float* y, int64_t n);
// y[i] = exp(x[i] - shift), exactly 0 where x[i] = -inf; returns the sum of y (the online
// softmax's inner step). `shift` must be finite.
float vexp_shifted_sum(const float* x, float shift, float* y, int64_t n);
// max of x[0, n) (-inf when n = 0); NaN-free input assumed.
float vmax(const float* x, int64_t n);  // -inf for n = 0; NaN if any x is NaN
void vsigmoid(const float* x, float* y, int64_t n);
// Natural log: -inf at 0, NaN below 0, +inf at +inf.
void vlog(const float* x, float* y, int64_t n);
// y[i] = log(exp(a[i]) + exp(b[i])) for finite or -inf a, b (-inf when both are); y may be a or b.
void vlogaddexp(const float* a, const float* b, float* y, int64_t n);

}  // namespace attend::kernels
