#include "attend/ops/layer_norm.h"

#include <cmath>
#include <stdexcept>
#include <string>

namespace attend {

Var layer_norm(const Var& x, const Var& gamma, const Var& beta, float eps) {
  const Shape& s = x.shape();
  if (s.ndim() < 1) throw std::invalid_argument("layer_norm: x must have at least one dimension, got " + s.str());
  const int64_t C = s[-1], rows = x.value().numel() / std::max<int64_t>(C, 1);
  if (gamma.shape() != Shape{C} || beta.shape() != Shape{C})
    throw std::invalid_argument("layer_norm: gamma " + gamma.shape().str() + " and beta " + beta.shape().str() +
                                " must be [" + std::to_string(C) + "] for x " + s.str());
  if (!(eps > 0.0f)) throw std::invalid_argument("layer_norm: eps must be > 0, got " + std::to_string(eps));
  Tensor y = Tensor::empty(s);
  Tensor xhat = Tensor::empty(s);            // saved for backward: (x - mean) * rstd
  Tensor rstd = Tensor::empty(Shape{rows});  // saved for backward: 1 / sqrt(var + eps)
  const float* xp = x.value().data();
  const float* g = gamma.value().data();
  const float* b = beta.value().data();
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = xp + r * C;
    double mean = 0.0, var = 0.0;
    for (int64_t c = 0; c < C; ++c) mean += xr[c];
    mean /= C;
    for (int64_t c = 0; c < C; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= C;
    const float rs = static_cast<float>(1.0 / std::sqrt(var + eps));
    rstd.data()[r] = rs;
    float* hr = xhat.data() + r * C;
    float* yr = y.data() + r * C;
    for (int64_t c = 0; c < C; ++c) {
      hr[c] = static_cast<float>(xr[c] - mean) * rs;
      yr[c] = hr[c] * g[c] + b[c];
    }
  }
  return make_result(std::move(y), needs_grad({&x, &gamma, &beta}), [x, gamma, beta, xhat, rstd, rows, C](Node& out) {
    // forward: y = xhat * gamma + beta, xhat = (x - mean) * rstd
    //   dgamma = sum_rows dy * xhat;  dbeta = sum_rows dy
    //   dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),  dxhat = dy * gamma
    const float* dy = out.grad.data();
    const float* g = gamma.value().data();
    float* dg = gamma.requires_grad() ? gamma.grad_ref().data() : nullptr;
    float* db = beta.requires_grad() ? beta.grad_ref().data() : nullptr;
    float* dx = x.requires_grad() ? x.grad_ref().data() : nullptr;
    for (int64_t r = 0; r < rows; ++r) {
      const float* dyr = dy + r * C;
      const float* hr = xhat.data() + r * C;
      double m1 = 0.0, m2 = 0.0;
      for (int64_t c = 0; c < C; ++c) {
        if (dg) dg[c] += dyr[c] * hr[c];
        if (db) db[c] += dyr[c];
        const double dh = double(dyr[c]) * g[c];
        m1 += dh;
        m2 += dh * hr[c];
      }
      if (!dx) continue;
      m1 /= C, m2 /= C;
      const float rs = rstd.data()[r];
      float* dxr = dx + r * C;
      for (int64_t c = 0; c < C; ++c) dxr[c] += rs * static_cast<float>(double(dyr[c]) * g[c] - m1 - hr[c] * m2);
    }
  });
}

}  // namespace attend
