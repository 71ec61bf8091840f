// attend kernels: inverted dropout with a counter-based mask (counter_random.h): nothing is
// stored between forward and backward; backward draws the same mask again from the seed.
//
// Element i is kept when the 32-bit half (low for even i, high for odd i) of
// counter_draw(seed, i / 2) is at least threshold = p * 2^32; kept elements are scaled by
// 1 / (1 - p).
#pragma once

#include <cstdint>

#include "counter_random.h"

namespace attend::kernels {

uint64_t dropout_threshold(float p);  // p * 2^32, p in [0, 1)

// The reference: whether element i is kept (the kernels below must agree with it).
inline bool dropout_keeps(uint64_t seed, uint64_t threshold, int64_t i) {
  const uint64_t r = counter_draw(seed, static_cast<uint64_t>(i) >> 1);
  return ((i & 1) ? (r >> 32) : (r & 0xffffffffu)) >= threshold;
}

// y[i] = keep(i) ? x[i] * scale : 0 for i in [0, n). y may be x.
void dropout_forward(const float* x, int64_t n, uint64_t seed, uint64_t threshold, float scale, float* y);
// dx[i] += keep(i) ? dy[i] * scale : 0 (gradients accumulate).
void dropout_backward(const float* dy, int64_t n, uint64_t seed, uint64_t threshold, float scale, float* dx);

// One thread's part, elements [begin, end) with begin even: vectorised for this CPU
// (dropout_vec.cpp, chosen at run time), bit for bit the scalar reference.
void dropout_forward_range(const float* x, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                           float* y);
void dropout_backward_range(const float* dy, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                            float* dx);
namespace reference {
void dropout_forward_range(const float* x, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                           float* y);
void dropout_backward_range(const float* dy, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                            float* dx);
}  // namespace reference

}  // namespace attend::kernels
