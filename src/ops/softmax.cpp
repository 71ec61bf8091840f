#include "attend/ops/softmax.h"

#include <cmath>
#include <stdexcept>

#include "../kernels/softmax.h"

namespace attend {

namespace {
// Returns rows_per_mask after checking that the mask fits x.
int64_t check_mask(const Shape& x, const Tensor& mask, const char* op) {
  if (x.ndim() < 1) throw std::invalid_argument(std::string(op) + ": needs at least 1 dim, got a scalar");
  const int64_t S = x[-1], rows = x.numel() / std::max<int64_t>(S, 1);
  if (!mask.defined()) return 1;
  if (mask.ndim() < 1 || mask.size(-1) != S || mask.numel() == 0 || rows % (mask.numel() / S) != 0) {
    throw std::invalid_argument(std::string(op) + ": mask " + mask.shape().str() + " does not fit input " + x.str());
  }
  return rows / (mask.numel() / S);
}

Var softmax_impl(const Var& x, const Tensor& mask, bool log_output) {
  const char* name = log_output ? "log_softmax" : "softmax";
  const int64_t rpm = check_mask(x.shape(), mask, name);
  const int64_t S = x.size(-1), rows = x.value().numel() / std::max<int64_t>(S, 1);
  Tensor y = Tensor::empty(x.shape());
  kernels::softmax_rows(x.value().data(), mask.defined() ? mask.data() : nullptr, rows, rpm, S, y.data(), log_output);
  return make_result(std::move(y), needs_grad({&x}), [x, rows, S, log_output](Node& out) {
    const float* y = out.value.data();
    const float* dy = out.grad.data();
    float* dx = x.grad_ref().data();
    for (int64_t r = 0; r < rows; ++r) {
      const float* yr = y + r * S;
      const float* gr = dy + r * S;
      float* dr = dx + r * S;
      if (log_output) {
        // forward: y = x - lse(x)  =>  dx = dy - softmax(x) * sum(dy)   (masked: y = -inf, no gradient)
        double sum = 0.0;
        for (int64_t s = 0; s < S; ++s)
          if (yr[s] != -INFINITY) sum += gr[s];
        for (int64_t s = 0; s < S; ++s)
          if (yr[s] != -INFINITY) dr[s] += gr[s] - std::exp(yr[s]) * static_cast<float>(sum);
      } else {
        // forward: y = exp(x - m) / sum  =>  dx = y * (dy - sum(dy * y))   (masked: y = 0, no gradient)
        double dot = 0.0;
        for (int64_t s = 0; s < S; ++s) dot += gr[s] * yr[s];
        for (int64_t s = 0; s < S; ++s) dr[s] += yr[s] * (gr[s] - static_cast<float>(dot));
      }
    }
  });
}
}  // namespace

Var softmax(const Var& x, const Tensor& mask) { return softmax_impl(x, mask, false); }
Var log_softmax(const Var& x, const Tensor& mask) { return softmax_impl(x, mask, true); }

}  // namespace attend
