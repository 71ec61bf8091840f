#include "softmax.h"

#include <algorithm>
#include <cmath>

#include "vec_math.h"

namespace attend::kernels {

namespace {

// One row, mask optional (null: every position): plain loops, one value at a time. The
// reference of the vector path below, and the path of masked rows.
void softmax_row_plain(const float* xr, const float* mr, int64_t S, float* yr, bool log_output) {
  float m = -INFINITY;
  bool nan = false;
  for (int64_t s = 0; s < S; ++s)
    if (!mr || mr[s] != 0.0f) m = std::fmax(m, xr[s]), nan |= std::isnan(xr[s]);
  if (nan) {  // a NaN score: the row is NaN, never the zeros of a fully masked row
    std::fill(yr, yr + S, NAN);
    return;
  }
  if (m == -INFINITY) {  // every position masked (or all -inf): defined as zero weight
    std::fill(yr, yr + S, log_output ? -INFINITY : 0.0f);
    return;
  }
  for (int64_t s = 0; s < S; ++s) yr[s] = xr[s] - m;
  vexp(yr, yr, S);
  double sum = 0.0;
  for (int64_t s = 0; s < S; ++s) {
    if (mr && mr[s] == 0.0f) yr[s] = 0.0f;
    sum += yr[s];
  }
  if (log_output) {
    const float lse = m + static_cast<float>(std::log(sum));
    for (int64_t s = 0; s < S; ++s) yr[s] = (!mr || mr[s] != 0.0f) ? xr[s] - lse : -INFINITY;
  } else {
    const float inv = static_cast<float>(1.0 / sum);
    for (int64_t s = 0; s < S; ++s) yr[s] *= inv;
  }
}

// One unmasked row whose max is finite, in vectors: the max, then exp(x - max) and its sum in
// one pass (a decoder step's 8,000-word output spent most of its time in the plain loops'
// one-at-a-time double sum). Anything else (NaN, +inf, a row of -inf) takes the plain loops.
bool softmax_row_vector(const float* xr, int64_t S, float* yr, bool log_output) {
  const float m = vmax(xr, S);
  if (!std::isfinite(m)) return false;
  const float sum = vexp_shifted_sum(xr, m, yr, S);
  if (log_output) {
    const float lse = m + std::log(sum);
    for (int64_t s = 0; s < S; ++s) yr[s] = xr[s] - lse;
  } else {
    const float inv = 1.0f / sum;
    for (int64_t s = 0; s < S; ++s) yr[s] *= inv;
  }
  return true;
}

}  // namespace

void softmax_rows(const float* x, const float* mask, int64_t rows, int64_t rows_per_mask, int64_t S, float* y,
                  bool log_output) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * S;
    const float* mr = mask ? mask + (r / rows_per_mask) * S : nullptr;
    float* yr = y + r * S;
    if (mr || !softmax_row_vector(xr, S, yr, log_output)) softmax_row_plain(xr, mr, S, yr, log_output);
  }
}

}  // namespace attend::kernels
