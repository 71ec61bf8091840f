#include "vec_math.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace attend::kernels {

namespace {

// exp(x) = 2^n · exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 split in two for accuracy),
// exp(r) by its degree-6 Taylor polynomial on |r| <= ln(2)/2 (truncation error < 1.2e-7 relative).
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f, kLog2e = 1.44269504088896341f;
constexpr float kExpMax = 88.3762626647949f, kExpMin = -87.3365447505531f;
constexpr float kC2 = 1.0f / 2, kC3 = 1.0f / 6, kC4 = 1.0f / 24, kC5 = 1.0f / 120, kC6 = 1.0f / 720;
// tanh: odd Taylor series below kTanhSmall (relative error < 2e-9), else 1 - 2/(exp(2|x|)+1).
// From |x| = 9.1, tanh(x) rounds to 1 in float.
constexpr float kTanhOne = 9.1f;
constexpr float kTanhSmall = 0.125f, kT3 = -1.0f / 3, kT5 = 2.0f / 15, kT7 = -17.0f / 315;

float exp_scalar(float x) {
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

float tanh_scalar(float x) {
  if (x != x) return x;
  const float a = std::fabs(x);
  float t;
  if (a < kTanhSmall) {
    const float a2 = a * a;
    t = a + a * a2 * (kT3 + a2 * (kT5 + a2 * kT7));
  } else {
    t = a >= kTanhOne ? 1.0f : 1.0f - 2.0f / (exp_scalar(2.0f * a) + 1.0f);
  }
  return std::copysign(t, x);
}

float sigmoid_scalar(float x) { return 1.0f / (1.0f + exp_scalar(-x)); }

// log(x) = e ln 2 + log(m), x = m 2^e with m in [sqrt(1/2), sqrt(2)); log(1 + f), f = m - 1, by
// Cephes' logf polynomial: f - f^2/2 + f^3 P(f) (relative error < 1e-7 on that interval).
constexpr float kSqrtHalf = 0.707106781186547524f;
constexpr float kL0 = 7.0376836292e-2f, kL1 = -1.1514610310e-1f, kL2 = 1.1676998740e-1f, kL3 = -1.2420140846e-1f,
                kL4 = 1.4249322787e-1f, kL5 = -1.6668057665e-1f, kL6 = 2.0000714765e-1f, kL7 = -2.4999993993e-1f,
                kL8 = 3.3333331174e-1f;

float log_scalar(float x) {
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
  float y = kL0;
  for (float c : {kL1, kL2, kL3, kL4, kL5, kL6, kL7, kL8}) y = y * m + c;
  y = y * m * z;
  y += static_cast<float>(e) * kLn2Lo;
  y += -0.5f * z;
  return (m + y) + static_cast<float>(e) * kLn2Hi;
}

float logaddexp_scalar(float a, float b) {
  const float hi = std::max(a, b), lo = std::min(a, b);
  return hi == -INFINITY ? hi : hi + log_scalar(1.0f + exp_scalar(lo - hi));
}

__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
  const __m256 underflow = _mm256_cmp_ps(x, _mm256_set1_ps(kExpMin), _CMP_LT_OQ);  // -> 0, as exp(-inf)
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpMin)), _mm256_set1_ps(kExpMax));
  const __m256 n =
      _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kC6);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(underflow, _mm256_mul_ps(p, _mm256_castsi256_ps(bits)));
}

__attribute__((target("avx2,fma"))) inline __m256 tanh8(__m256 x) {
  const __m256 sign = _mm256_and_ps(x, _mm256_set1_ps(-0.0f));
  const __m256 a = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
  // Large branch: 1 - 2 / (exp(2|x|) + 1), and exactly 1 from |x| = kTanhOne.
  const __m256 e = exp8(_mm256_mul_ps(_mm256_set1_ps(2.0f), _mm256_min_ps(a, _mm256_set1_ps(kTanhOne))));
  __m256 big =
      _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  big = _mm256_blendv_ps(big, _mm256_set1_ps(1.0f), _mm256_cmp_ps(a, _mm256_set1_ps(kTanhOne), _CMP_GE_OQ));
  // Small branch: x + x^3 (T3 + x^2 (T5 + x^2 T7)).
  const __m256 x2 = _mm256_mul_ps(a, a);
  __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(kT7), _mm256_set1_ps(kT5));
  q = _mm256_fmadd_ps(x2, q, _mm256_set1_ps(kT3));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(a, x2), q, a);
  const __m256 is_small = _mm256_cmp_ps(a, _mm256_set1_ps(kTanhSmall), _CMP_LT_OQ);
  return _mm256_or_ps(_mm256_blendv_ps(big, small, is_small), sign);
}

__attribute__((target("avx2,fma"))) inline __m256 sigmoid8(__m256 x) {
  const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

__attribute__((target("avx2,fma"))) inline __m256 log8(__m256 x) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256 invalid = _mm256_or_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ), _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  const __m256 is_zero = _mm256_cmp_ps(x, zero, _CMP_EQ_OQ);
  const __m256 is_inf = _mm256_cmp_ps(x, _mm256_set1_ps(INFINITY), _CMP_EQ_OQ);
  // Denormals: scaled by 2^23 into the normal range first, 23 taken off the exponent after.
  const __m256 denormal = _mm256_cmp_ps(x, _mm256_set1_ps(1.17549435e-38f), _CMP_LT_OQ);
  x = _mm256_blendv_ps(x, _mm256_mul_ps(x, _mm256_set1_ps(8388608.0f)), denormal);
  const __m256i bits = _mm256_castps_si256(x);
  __m256 e = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(126)));
  e = _mm256_sub_ps(e, _mm256_and_ps(denormal, _mm256_set1_ps(23.0f)));
  __m256 m = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)),
                                                 _mm256_set1_epi32(0x3f000000)));  // [1/2, 1)
  const __m256 small = _mm256_cmp_ps(m, _mm256_set1_ps(kSqrtHalf), _CMP_LT_OQ);
  e = _mm256_sub_ps(e, _mm256_and_ps(small, _mm256_set1_ps(1.0f)));
  m = _mm256_sub_ps(_mm256_add_ps(m, _mm256_and_ps(small, m)), _mm256_set1_ps(1.0f));
  const __m256 z = _mm256_mul_ps(m, m);
  __m256 y = _mm256_set1_ps(kL0);
  for (float c : {kL1, kL2, kL3, kL4, kL5, kL6, kL7, kL8}) y = _mm256_fmadd_ps(y, m, _mm256_set1_ps(c));
  y = _mm256_mul_ps(_mm256_mul_ps(y, m), z);
  y = _mm256_fmadd_ps(e, _mm256_set1_ps(kLn2Lo), y);
  y = _mm256_fmadd_ps(z, _mm256_set1_ps(-0.5f), y);
  __m256 r = _mm256_fmadd_ps(e, _mm256_set1_ps(kLn2Hi), _mm256_add_ps(m, y));
  r = _mm256_blendv_ps(r, _mm256_set1_ps(-INFINITY), is_zero);
  r = _mm256_blendv_ps(r, _mm256_set1_ps(INFINITY), is_inf);
  return _mm256_blendv_ps(r, _mm256_set1_ps(NAN), invalid);
}

// NaN inputs: min/max in exp8 would turn them into numbers; keep them NaN as libm does.
__attribute__((target("avx2,fma"))) inline __m256 keep_nan(__m256 x, __m256 y) {
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

template <class V, class S>
__attribute__((target("avx2,fma"))) void apply_avx2(const float* x, float* y, int64_t n, V vec, S scalar) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(y + i, keep_nan(v, vec(v)));
  }
  for (; i < n; ++i) y[i] = scalar(x[i]);
}

// y = exp(x - shift), 0 where x = -inf; returns the sum of the first `done` (a multiple of 8).
__attribute__((target("avx2,fma"))) float exp_shifted_sum_avx2(const float* x, float shift, float* y, int64_t n,
                                                               int64_t& done) {
  const __m256 sh = _mm256_set1_ps(shift), ninf = _mm256_set1_ps(-INFINITY);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 e = _mm256_andnot_ps(_mm256_cmp_ps(v, ninf, _CMP_EQ_OQ), exp8(_mm256_sub_ps(v, sh)));
    _mm256_storeu_ps(y + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  done = i;
  __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
  return _mm_cvtss_f32(s4);
}

__attribute__((target("avx2,fma"))) float max_avx2(const float* x, int64_t n, int64_t& done) {
  __m256 m = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    m = _mm256_max_ps(m, v);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  done = i;
  if (_mm256_movemask_ps(nan)) return NAN;
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  return _mm_cvtss_f32(m4);
}

template <class S>
void apply_scalar(const float* x, float* y, int64_t n, S scalar) {
  for (int64_t i = 0; i < n; ++i) y[i] = scalar(x[i]);
}

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

Isa g_isa = cpu_has_avx2() ? Isa::kAvx2 : Isa::kScalar;

}  // namespace

Isa best_isa() { return cpu_has_avx2() ? Isa::kAvx2 : Isa::kScalar; }
Isa vec_math_isa() { return g_isa; }

void set_vec_math_isa(Isa isa) {
  if (isa == Isa::kAvx2 && !cpu_has_avx2()) throw std::invalid_argument("set_vec_math_isa: this CPU has no AVX2+FMA");
  g_isa = isa;
}

void vexp(const float* x, float* y, int64_t n) {
  auto s = [](float v) { return exp_scalar(v); };
  if (g_isa == Isa::kAvx2)
    apply_avx2(
        x, y, n, [](__m256 v) __attribute__((target("avx2,fma"))) { return exp8(v); }, s);
  else
    apply_scalar(x, y, n, s);
}

float vexp_shifted_sum(const float* x, float shift, float* y, int64_t n) {
  int64_t i = 0;
  float sum = 0.0f;
  if (g_isa == Isa::kAvx2) sum = exp_shifted_sum_avx2(x, shift, y, n, i);
  for (; i < n; ++i) {
    y[i] = x[i] == -INFINITY ? 0.0f : exp_scalar(x[i] - shift);
    sum += y[i];
  }
  return sum;
}

float vmax(const float* x, int64_t n) {
  int64_t i = 0;
  float m = -INFINITY;
  if (g_isa == Isa::kAvx2) m = max_avx2(x, n, i);
  for (; i < n; ++i) m = std::isnan(x[i]) ? x[i] : std::max(m, x[i]);  // NaN wins: it must not vanish
  return m;
}

void vtanh(const float* x, float* y, int64_t n) {
  auto s = [](float v) { return tanh_scalar(v); };
  if (g_isa == Isa::kAvx2)
    apply_avx2(
        x, y, n, [](__m256 v) __attribute__((target("avx2,fma"))) { return tanh8(v); }, s);
  else
    apply_scalar(x, y, n, s);
}

void vsigmoid(const float* x, float* y, int64_t n) {
  auto s = [](float v) { return sigmoid_scalar(v); };
  if (g_isa == Isa::kAvx2)
    apply_avx2(
        x, y, n, [](__m256 v) __attribute__((target("avx2,fma"))) { return sigmoid8(v); }, s);
  else
    apply_scalar(x, y, n, s);
}

void vlog(const float* x, float* y, int64_t n) {
  auto s = [](float v) { return log_scalar(v); };
  if (g_isa == Isa::kAvx2)
    apply_avx2(
        x, y, n, [](__m256 v) __attribute__((target("avx2,fma"))) { return log8(v); }, s);
  else
    apply_scalar(x, y, n, s);
}

namespace {
__attribute__((target("avx2,fma"))) int64_t logaddexp_avx2(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 va = _mm256_loadu_ps(a + i), vb = _mm256_loadu_ps(b + i);
    const __m256 hi = _mm256_max_ps(va, vb), lo = _mm256_min_ps(va, vb);
    const __m256 none = _mm256_cmp_ps(hi, _mm256_set1_ps(-INFINITY), _CMP_EQ_OQ);
    // exp8(-inf - -inf) would be NaN: where both are -inf the difference is taken as -inf.
    const __m256 d = _mm256_blendv_ps(_mm256_sub_ps(lo, hi), _mm256_set1_ps(-INFINITY), none);
    const __m256 r = _mm256_add_ps(hi, log8(_mm256_add_ps(_mm256_set1_ps(1.0f), exp8(d))));
    _mm256_storeu_ps(y + i, _mm256_blendv_ps(r, hi, none));
  }
  return i;
}
}  // namespace

void vlogaddexp(const float* a, const float* b, float* y, int64_t n) {
  int64_t i = g_isa == Isa::kAvx2 ? logaddexp_avx2(a, b, y, n) : 0;
  for (; i < n; ++i) y[i] = logaddexp_scalar(a[i], b[i]);
}

}  // namespace attend::kernels
