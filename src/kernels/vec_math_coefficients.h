// attend kernels: the polynomial approximations behind vec_math, shared by the scalar reference
// (vec_math_reference.cpp) and the vector code (vec_math.cpp) so that both compute the same thing.
#pragma once

namespace attend::kernels::coefficients {

// exp(x) = 2^n · exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two for accuracy),
// exp(r) by its degree-6 Taylor polynomial on |r| <= ln(2)/2 (truncation error < 1.2e-7 relative).
inline constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f, kLog2e = 1.44269504088896341f;
inline constexpr float kExpMax = 88.3762626647949f, kExpMin = -87.3365447505531f;
inline constexpr float kC2 = 1.0f / 2, kC3 = 1.0f / 6, kC4 = 1.0f / 24, kC5 = 1.0f / 120, kC6 = 1.0f / 720;

// tanh: odd Taylor series below kTanhSmall (relative error < 2e-9), else 1 - 2/(exp(2|x|)+1).
// From |x| = 9.1, tanh(x) rounds to 1 in float.
inline constexpr float kTanhOne = 9.1f;
inline constexpr float kTanhSmall = 0.125f, kT3 = -1.0f / 3, kT5 = 2.0f / 15, kT7 = -17.0f / 315;

// log(x) = e ln 2 + log(m), x = m 2^e with m in [sqrt(1/2), sqrt(2)); log(1 + f), f = m - 1, by
// Cephes' logf polynomial: f - f^2/2 + f^3 P(f) (relative error < 1e-7 on that interval).
inline constexpr float kSqrtHalf = 0.707106781186547524f;
inline constexpr float kLogPoly[] = {7.0376836292e-2f,  -1.1514610310e-1f, 1.1676998740e-1f,
                                     -1.2420140846e-1f, 1.4249322787e-1f,  -1.6668057665e-1f,
                                     2.0000714765e-1f,  -2.4999993993e-1f, 3.3333331174e-1f};
inline constexpr float kMinNormal = 1.17549435e-38f, kTwoTo23 = 8388608.0f;

}  // namespace attend::kernels::coefficients
