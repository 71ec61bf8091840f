#include "dropout.h"

#include <cmath>

#include "parallel.h"

namespace attend::kernels {

uint64_t dropout_threshold(float p) { return static_cast<uint64_t>(std::ldexp(static_cast<double>(p), 32)); }

namespace reference {
// Two elements per draw: the pair (2j, 2j + 1) from counter_draw(seed, j); `begin` is even.
void dropout_forward_range(const float* x, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                           float* y) {
  int64_t i = begin;
  for (; i + 1 < end; i += 2) {
    const uint64_t r = counter_draw(seed, static_cast<uint64_t>(i) >> 1);
    y[i] = (r & 0xffffffffu) >= threshold ? x[i] * scale : 0.0f;
    y[i + 1] = (r >> 32) >= threshold ? x[i + 1] * scale : 0.0f;
  }
  if (i < end) y[i] = dropout_keeps(seed, threshold, i) ? x[i] * scale : 0.0f;
}

void dropout_backward_range(const float* dy, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold, float scale,
                            float* dx) {
  int64_t i = begin;
  for (; i + 1 < end; i += 2) {
    const uint64_t r = counter_draw(seed, static_cast<uint64_t>(i) >> 1);
    if ((r & 0xffffffffu) >= threshold) dx[i] += dy[i] * scale;
    if ((r >> 32) >= threshold) dx[i + 1] += dy[i + 1] * scale;
  }
  if (i < end && dropout_keeps(seed, threshold, i)) dx[i] += dy[i] * scale;
}

}  // namespace reference

namespace {
constexpr double kOpsPerElement = 16.0;  // the counter hash, per pair, and the select
}  // namespace

void dropout_forward(const float* x, int64_t n, uint64_t seed, uint64_t threshold, float scale, float* y) {
  parallel_ranges(
      n, kOpsPerElement * n, [&](int64_t b, int64_t e) { dropout_forward_range(x, b, e, seed, threshold, scale, y); },
      2);
}

void dropout_backward(const float* dy, int64_t n, uint64_t seed, uint64_t threshold, float scale, float* dx) {
  parallel_ranges(
      n, kOpsPerElement * n,
      [&](int64_t b, int64_t e) { dropout_backward_range(dy, b, e, seed, threshold, scale, dx); }, 2);
}

}  // namespace attend::kernels
