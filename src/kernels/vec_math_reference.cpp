// The scalar reference of vec_math: the same approximations one value at a time. The vector
// code is tested against it and uses it for the last n % lanes values of every array.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "vec_math.h"
#include "vec_math_coefficients.h"

namespace attend::kernels::reference {

namespace {

using namespace coefficients;

float exp1(float x) {
  if (x != x) return x;
  if (x < kExpMin) return 0.0f;  // below the normal range (and exp(-inf) = 0 exactly)
  x = std::fmin(std::fmax(x, kExpMin), kExpMax);
  const float n = std::nearbyint(x * kLog2e);
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  const float p = 1.0f + r * (1.0f + r * (kC2 + r * (kC3 + r * (kC4 + r * (kC5 + r * kC6)))));
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

float tanh1(float x) {
  if (x != x) return x;
  const float a = std::fabs(x);
  float t;
  if (a < kTanhSmall) {
    const float a2 = a * a;
    t = a + a * a2 * (kT3 + a2 * (kT5 + a2 * kT7));
  } else {
    t = a >= kTanhOne ? 1.0f : 1.0f - 2.0f / (exp1(2.0f * a) + 1.0f);
  }
  return std::copysign(t, x);
}

float sigmoid1(float x) { return 1.0f / (1.0f + exp1(-x)); }

float log1(float x) {
  if (x != x || x < 0.0f) return NAN;
  if (x == 0.0f) return -INFINITY;
  if (x == INFINITY) return x;
  int e = 0;
  float m = std::frexp(x, &e);  // m in [1/2, 1), denormals included
  if (m < kSqrtHalf)
    e -= 1, m = m + m - 1.0f;
  else
    m = m - 1.0f;
  const float z = m * m;
  float y = kLogPoly[0];
  for (int k = 1; k < 9; ++k) y = y * m + kLogPoly[k];
  y = y * m * z;
  y += static_cast<float>(e) * kLn2Lo;
  y += -0.5f * z;
  return (m + y) + static_cast<float>(e) * kLn2Hi;
}

template <class F>
void apply(const float* x, float* y, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

}  // namespace

void vexp(const float* x, float* y, int64_t n) { apply(x, y, n, exp1); }
void vtanh(const float* x, float* y, int64_t n) { apply(x, y, n, tanh1); }
void vsigmoid(const float* x, float* y, int64_t n) { apply(x, y, n, sigmoid1); }
void vlog(const float* x, float* y, int64_t n) { apply(x, y, n, log1); }

float vexp_shifted_sum(const float* x, float shift, float* y, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    y[i] = x[i] == -INFINITY ? 0.0f : exp1(x[i] - shift);
    sum += y[i];
  }
  return sum;
}

float vmax(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = std::isnan(x[i]) ? x[i] : std::max(m, x[i]);  // NaN wins: it must not vanish
  return m;
}

void vlogaddexp(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float hi = std::max(a[i], b[i]), lo = std::min(a[i], b[i]);
    y[i] = hi == -INFINITY ? hi : hi + log1(1.0f + exp1(lo - hi));
  }
}

}  // namespace attend::kernels::reference
