// vec_math written once over Google Highway: foreach_target.h re-includes this file once per
// instruction set (HWY_TARGETS), each copy in its own namespace compiled for that ISA; the
// HWY_ONCE part exports them and calls the one this CPU runs best (isa.h). The last n % lanes
// values of an array go through the scalar reference, which computes the same polynomials.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/vec_math.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
//
#include <hwy/highway.h>

#include <cmath>
#include <cstdint>

#include "kernels/vec_math.h"
#include "kernels/vec_math_coefficients.h"

HWY_BEFORE_NAMESPACE();
namespace attend::kernels::HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using namespace coefficients;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

V Exp(D d, V x) {
  const hn::RebindToSigned<D> di;
  const auto underflow = hn::Lt(x, hn::Set(d, kExpMin));  // -> 0, as exp(-inf)
  x = hn::Min(hn::Max(x, hn::Set(d, kExpMin)), hn::Set(d, kExpMax));
  const V n = hn::Round(hn::Mul(x, hn::Set(d, kLog2e)));
  V r = hn::NegMulAdd(n, hn::Set(d, kLn2Hi), x);
  r = hn::NegMulAdd(n, hn::Set(d, kLn2Lo), r);
  V p = hn::Set(d, kC6);
  for (float c : {kC5, kC4, kC3, kC2, 1.0f, 1.0f}) p = hn::MulAdd(p, r, hn::Set(d, c));
  const auto bits = hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127)));
  return hn::IfThenZeroElse(underflow, hn::Mul(p, hn::BitCast(d, bits)));
}

V Tanh(D d, V x) {
  const V a = hn::Abs(x), one = hn::Set(d, 1.0f);
  // Large |x|: 1 - 2 / (exp(2|x|) + 1), and exactly 1 from |x| = kTanhOne.
  const V e = Exp(d, hn::Mul(hn::Set(d, 2.0f), hn::Min(a, hn::Set(d, kTanhOne))));
  V big = hn::Sub(one, hn::Div(hn::Set(d, 2.0f), hn::Add(e, one)));
  big = hn::IfThenElse(hn::Ge(a, hn::Set(d, kTanhOne)), one, big);
  // Small |x|: x + x^3 (T3 + x^2 (T5 + x^2 T7)).
  const V x2 = hn::Mul(a, a);
  const V q = hn::MulAdd(x2, hn::MulAdd(x2, hn::Set(d, kT7), hn::Set(d, kT5)), hn::Set(d, kT3));
  const V small = hn::MulAdd(hn::Mul(a, x2), q, a);
  return hn::CopySign(hn::IfThenElse(hn::Lt(a, hn::Set(d, kTanhSmall)), small, big), x);
}

V Sigmoid(D d, V x) {
  const V one = hn::Set(d, 1.0f);
  return hn::Div(one, hn::Add(one, Exp(d, hn::Neg(x))));
}

V Log(D d, V x) {
  const hn::RebindToSigned<D> di;
  const V zero = hn::Zero(d);
  const auto invalid = hn::Or(hn::Lt(x, zero), hn::IsNaN(x));
  const auto is_zero = hn::Eq(x, zero);
  const auto is_inf = hn::Eq(x, hn::Set(d, INFINITY));
  // Denormals: scaled by 2^23 into the normal range first, 23 taken off the exponent after.
  const auto denormal = hn::Lt(x, hn::Set(d, kMinNormal));
  x = hn::IfThenElse(denormal, hn::Mul(x, hn::Set(d, kTwoTo23)), x);
  const auto bits = hn::BitCast(di, x);
  V e = hn::ConvertTo(d, hn::Sub(hn::ShiftRight<23>(bits), hn::Set(di, 126)));
  e = hn::Sub(e, hn::IfThenElseZero(denormal, hn::Set(d, 23.0f)));
  V m = hn::BitCast(d, hn::Or(hn::And(bits, hn::Set(di, 0x007fffff)), hn::Set(di, 0x3f000000)));  // [1/2, 1)
  const auto small = hn::Lt(m, hn::Set(d, kSqrtHalf));
  e = hn::Sub(e, hn::IfThenElseZero(small, hn::Set(d, 1.0f)));
  m = hn::Sub(hn::Add(m, hn::IfThenElseZero(small, m)), hn::Set(d, 1.0f));
  const V z = hn::Mul(m, m);
  V y = hn::Set(d, kLogPoly[0]);
  for (int k = 1; k < 9; ++k) y = hn::MulAdd(y, m, hn::Set(d, kLogPoly[k]));
  y = hn::Mul(hn::Mul(y, m), z);
  y = hn::MulAdd(e, hn::Set(d, kLn2Lo), y);
  y = hn::MulAdd(z, hn::Set(d, -0.5f), y);
  V r = hn::MulAdd(e, hn::Set(d, kLn2Hi), hn::Add(m, y));
  r = hn::IfThenElse(is_zero, hn::Set(d, -INFINITY), r);
  r = hn::IfThenElse(is_inf, hn::Set(d, INFINITY), r);
  return hn::IfThenElse(invalid, hn::Set(d, NAN), r);
}

// y = F(x) lane by lane (F a template argument: inlined); NaN stays NaN (the clamps inside Exp
// would turn it into a number).
template <V (*F)(D, V)>
void Apply(const float* x, float* y, int64_t n, void (*tail)(const float*, float*, int64_t)) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V v = hn::LoadU(d, x + i);
    hn::StoreU(hn::IfThenElse(hn::IsNaN(v), v, F(d, v)), d, y + i);
  }
  tail(x + i, y + i, n - i);
}

}  // namespace

void VExp(const float* x, float* y, int64_t n) { Apply<Exp>(x, y, n, reference::vexp); }
void VTanh(const float* x, float* y, int64_t n) { Apply<Tanh>(x, y, n, reference::vtanh); }
void VSigmoid(const float* x, float* y, int64_t n) { Apply<Sigmoid>(x, y, n, reference::vsigmoid); }
void VLog(const float* x, float* y, int64_t n) { Apply<Log>(x, y, n, reference::vlog); }

float VExpShiftedSum(const float* x, float shift, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const V sh = hn::Set(d, shift), ninf = hn::Set(d, -INFINITY);
  V acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V v = hn::LoadU(d, x + i);
    const V e = hn::IfThenZeroElse(hn::Eq(v, ninf), Exp(d, hn::Sub(v, sh)));
    hn::StoreU(e, d, y + i);
    acc = hn::Add(acc, e);
  }
  return hn::GetLane(hn::SumOfLanes(d, acc)) + reference::vexp_shifted_sum(x + i, shift, y + i, n - i);
}

float VMax(const float* x, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  V m = hn::Set(d, -INFINITY), nan = hn::Zero(d);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V v = hn::LoadU(d, x + i);
    m = hn::Max(m, v);
    nan = hn::Or(nan, hn::VecFromMask(d, hn::IsNaN(v)));
  }
  if (!hn::AllFalse(d, hn::MaskFromVec(nan))) return NAN;
  const float head = hn::GetLane(hn::MaxOfLanes(d, m)), rest = reference::vmax(x + i, n - i);
  return rest != rest ? rest : (head > rest ? head : rest);
}

void VLogAddExp(const float* a, const float* b, float* y, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const V ninf = hn::Set(d, -INFINITY), one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const V va = hn::LoadU(d, a + i), vb = hn::LoadU(d, b + i);
    const V hi = hn::Max(va, vb), lo = hn::Min(va, vb);
    const auto none = hn::Eq(hi, ninf);
    // Exp(-inf - -inf) would be NaN: where both are -inf the difference is taken as -inf.
    const V diff = hn::IfThenElse(none, ninf, hn::Sub(lo, hi));
    const V r = hn::Add(hi, Log(d, hn::Add(one, Exp(d, diff))));
    hn::StoreU(hn::IfThenElse(none, hi, r), d, y + i);
  }
  reference::vlogaddexp(a + i, b + i, y + i, n - i);
}

}  // namespace attend::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace attend::kernels {

HWY_EXPORT(VExp);
HWY_EXPORT(VTanh);
HWY_EXPORT(VSigmoid);
HWY_EXPORT(VLog);
HWY_EXPORT(VExpShiftedSum);
HWY_EXPORT(VMax);
HWY_EXPORT(VLogAddExp);

void vexp(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(VExp)(x, y, n); }
void vtanh(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(VTanh)(x, y, n); }
void vsigmoid(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(VSigmoid)(x, y, n); }
void vlog(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(VLog)(x, y, n); }
float vexp_shifted_sum(const float* x, float shift, float* y, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(VExpShiftedSum)(x, shift, y, n);
}
float vmax(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(VMax)(x, n); }
void vlogaddexp(const float* a, const float* b, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(VLogAddExp)(a, b, y, n); }

}  // namespace attend::kernels
#endif  // HWY_ONCE
