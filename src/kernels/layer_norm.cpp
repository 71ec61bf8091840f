#include "layer_norm.h"

#include <cmath>

namespace attend::kernels {
namespace {

constexpr int kLanes = 16;       // one AVX-512 vector, two AVX2 ones
constexpr int64_t kBlock = 256;  // values per float block (16 per lane)

// sum_c f(c) over [0, C): float lanes within a block, double across blocks.
template <typename F>
double lane_sum(int64_t C, F f) {
  double total = 0.0;
  for (int64_t c0 = 0; c0 < C; c0 += kBlock) {
    const int64_t c1 = c0 + kBlock < C ? c0 + kBlock : C;
    float acc[kLanes] = {};
    int64_t c = c0;
    for (; c + kLanes <= c1; c += kLanes)
      for (int j = 0; j < kLanes; ++j) acc[j] += f(c + j);
    float tail = 0.0f;
    for (; c < c1; ++c) tail += f(c);
    for (int w = kLanes / 2; w > 0; w /= 2)  // pairwise across the lanes
      for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
    total += double(acc[0]) + tail;
  }
  return total;
}

}  // namespace

void layer_norm_forward(int64_t rows, int64_t C, const float* x, const float* gamma, const float* beta, float eps,
                        float* y, float* xhat, float* rstd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    const float mean = static_cast<float>(lane_sum(C, [xr](int64_t c) { return xr[c]; }) / double(C));
    const double var = lane_sum(C,
                                [xr, mean](int64_t c) {
                                  const float d = xr[c] - mean;
                                  return d * d;
                                }) /
                       double(C);
    const float rs = static_cast<float>(1.0 / std::sqrt(var + eps));
    rstd[r] = rs;
    float* hr = xhat + r * C;
    float* yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) {
      hr[c] = (xr[c] - mean) * rs;
      yr[c] = hr[c] * gamma[c] + beta[c];
    }
  }
}

void layer_norm_backward(int64_t rows, int64_t C, const float* dy, const float* xhat, const float* rstd,
                         const float* gamma, float* dx, float* dgamma, float* dbeta) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* dyr = dy + r * C;
    const float* hr = xhat + r * C;
    if (dgamma)
      for (int64_t c = 0; c < C; ++c) dgamma[c] += dyr[c] * hr[c];
    if (dbeta)
      for (int64_t c = 0; c < C; ++c) dbeta[c] += dyr[c];
    if (!dx) continue;
    // forward: y = xhat * gamma + beta; dxhat = dy * gamma
    const float m1 = static_cast<float>(lane_sum(C, [=](int64_t c) { return dyr[c] * gamma[c]; }) / double(C));
    const float m2 = static_cast<float>(lane_sum(C, [=](int64_t c) { return dyr[c] * gamma[c] * hr[c]; }) / double(C));
    const float rs = rstd[r];
    float* dxr = dx + r * C;
    for (int64_t c = 0; c < C; ++c) dxr[c] += rs * (dyr[c] * gamma[c] - m1 - hr[c] * m2);
  }
}

void layer_norm_forward_reference(int64_t rows, int64_t C, const float* x, const float* gamma, const float* beta,
                                  float eps, float* y, float* xhat, float* rstd) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * C;
    double mean = 0.0, var = 0.0;
    for (int64_t c = 0; c < C; ++c) mean += xr[c];
    mean /= C;
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= C;
    const float rs = static_cast<float>(1.0 / std::sqrt(var + eps));
    rstd[r] = rs;
    for (int64_t c = 0; c < C; ++c) {
      xhat[r * C + c] = static_cast<float>(xr[c] - mean) * rs;
      y[r * C + c] = xhat[r * C + c] * gamma[c] + beta[c];
    }
  }
}

void layer_norm_backward_reference(int64_t rows, int64_t C, const float* dy, const float* xhat, const float* rstd,
                                   const float* gamma, float* dx, float* dgamma, float* dbeta) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* dyr = dy + r * C;
    const float* hr = xhat + r * C;
    double m1 = 0.0, m2 = 0.0;
    for (int64_t c = 0; c < C; ++c) {
      if (dgamma) dgamma[c] += dyr[c] * hr[c];
      if (dbeta) dbeta[c] += dyr[c];
      const double dh = double(dyr[c]) * gamma[c];
      m1 += dh;
      m2 += dh * hr[c];
    }
    if (!dx) continue;
    m1 /= C, m2 /= C;
    for (int64_t c = 0; c < C; ++c)
      dx[r * C + c] += rstd[r] * static_cast<float>(double(dyr[c]) * gamma[c] - m1 - hr[c] * m2);
  }
}

}  // namespace attend::kernels
