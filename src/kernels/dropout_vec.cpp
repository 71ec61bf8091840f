// The dropout kernels' inner loops over Google Highway (as vec_math.cpp): the counter hash of
// counter_random.h on 64-bit lanes, each lane's two 32-bit halves being the draws of its two
// elements (low: even, high: odd, which is their order in memory), compared with the threshold.
// The same bits as the scalar loops (reference::), which also take the last elements.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/dropout_vec.cpp"
#include <hwy/foreach_target.h>  // must come before highway.h
//
#include <hwy/highway.h>

#include <cstdint>

#include "kernels/dropout.h"

HWY_BEFORE_NAMESPACE();
namespace attend::kernels::HWY_NAMESPACE {
#if HWY_TARGET == HWY_SCALAR  // one lane: no pair of 32-bit halves to split a 64-bit lane into
void DropoutForwardRange(const float* x, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                         float* y) {
  reference::dropout_forward_range(x, begin, end, seed, threshold, scale, y);
}
void DropoutBackwardRange(const float* dy, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                          float* dx) {
  reference::dropout_backward_range(dy, begin, end, seed, threshold, scale, dx);
}
#else
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using D64 = hn::ScalableTag<uint64_t>;
using V64 = hn::Vec<D64>;

// a * b mod 2^64 per lane: one instruction with AVX-512 (vpmullq), else from 32-bit products.
V64 Mul64(V64 a, V64 b) {
#if HWY_TARGET <= HWY_AVX3
  return a * b;
#else
  const hn::Repartition<uint32_t, D64> d32;
  const V64 lo = hn::MulEven(hn::BitCast(d32, a), hn::BitCast(d32, b));
  const V64 cross = hn::Add(hn::MulEven(hn::BitCast(d32, hn::ShiftRight<32>(a)), hn::BitCast(d32, b)),
                            hn::MulEven(hn::BitCast(d32, a), hn::BitCast(d32, hn::ShiftRight<32>(b))));
  return hn::Add(lo, hn::ShiftLeft<32>(cross));
#endif
}

// counter_draw(seed, j) for the lanes' j = first, first + 1, ...
V64 Draws(D64 d, uint64_t seed, uint64_t first) {
  V64 z =
      hn::Add(hn::Set(d, seed), Mul64(hn::Add(hn::Set(d, first), hn::Iota(d, 1)), hn::Set(d, 0x9e3779b97f4a7c15ULL)));
  z = Mul64(hn::Xor(z, hn::ShiftRight<30>(z)), hn::Set(d, 0xbf58476d1ce4e5b9ULL));
  z = Mul64(hn::Xor(z, hn::ShiftRight<27>(z)), hn::Set(d, 0x94d049bb133111ebULL));
  return hn::Xor(z, hn::ShiftRight<31>(z));
}

// fn(i, keep) for every whole vector of elements from `begin` (even) on, keep being the float
// mask of the elements kept; returns where the vectors ended (the reference takes the rest).
template <class Fn>
int64_t ForEachVector(int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, Fn fn) {
  const D64 d64;
  const hn::Repartition<uint32_t, D64> d32;
  const hn::Repartition<float, D64> df;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto t = hn::Set(d32, static_cast<uint32_t>(threshold));
  int64_t i = begin;
  for (; i + lanes <= end; i += lanes) {
    const auto r = hn::BitCast(d32, Draws(d64, seed, static_cast<uint64_t>(i) >> 1));
    fn(i, hn::RebindMask(df, hn::Not(hn::Gt(t, r))));  // r >= threshold
  }
  return i;
}

}  // namespace

void DropoutForwardRange(const float* x, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                         float* y) {
  const hn::Repartition<float, D64> df;
  const auto s = hn::Set(df, scale);
  const int64_t i = ForEachVector(begin, end, seed, threshold, [&](int64_t at, auto keep) {
    hn::StoreU(hn::IfThenElseZero(keep, hn::Mul(hn::LoadU(df, x + at), s)), df, y + at);
  });
  reference::dropout_forward_range(x, i, end, seed, threshold, scale, y);
}

void DropoutBackwardRange(const float* dy, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                          float* dx) {
  const hn::Repartition<float, D64> df;
  const auto s = hn::Set(df, scale);
  const int64_t i = ForEachVector(begin, end, seed, threshold, [&](int64_t at, auto keep) {
    const auto d = hn::LoadU(df, dx + at);  // (dropped: left as it is, -0 included)
    hn::StoreU(hn::IfThenElse(keep, hn::Add(d, hn::Mul(hn::LoadU(df, dy + at), s)), d), df, dx + at);
  });
  reference::dropout_backward_range(dy, i, end, seed, threshold, scale, dx);
}
#endif  // HWY_TARGET == HWY_SCALAR

}  // namespace attend::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace attend::kernels {

HWY_EXPORT(DropoutForwardRange);
HWY_EXPORT(DropoutBackwardRange);

void dropout_forward_range(const float* x, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                           float* y) {
  HWY_DYNAMIC_DISPATCH(DropoutForwardRange)(x, begin, end, seed, threshold, scale, y);
}
void dropout_backward_range(const float* dy, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                            float* dx) {
  HWY_DYNAMIC_DISPATCH(DropoutBackwardRange)(dy, begin, end, seed, threshold, scale, dx);
}

}  // namespace attend::kernels
#endif  // HWY_ONCE
