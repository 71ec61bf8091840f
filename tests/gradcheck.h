// Finite-difference gradient checking (central differences) for attend's tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "attend/autograd/variable.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/reduce.h"
#include "attend/random.h"

namespace attend::testing {

inline Var random_var(const Shape& shape, Rng& rng, float scale = 1.0f, bool requires_grad = true) {
  Tensor t(shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = rng.normal() * scale;
  return Var(t, requires_grad);
}

struct GradCheckOptions {
  float eps = 1e-2f;   // central-difference step
  float atol = 2e-3f;  // |analytic - numeric| <= atol + rtol * |numeric|
  float rtol = 2e-2f;
};

// Checks d(sum(f(inputs) * R))/d(inputs) against central differences, for a fixed random R.
// Reports the worst element (input, index, analytic, numeric) on failure.
inline void gradcheck(const std::function<Var(const std::vector<Var>&)>& f, std::vector<Var> inputs,
                      const GradCheckOptions& opt = {}) {
  Rng rng(1234);
  Tensor probe;
  auto loss_value = [&]() {
    NoGradScope no_grad;
    Var y = f(inputs);
    if (!probe.defined()) {
      probe = Tensor(y.shape());
      for (int64_t i = 0; i < probe.numel(); ++i) probe.data()[i] = rng.normal();
    }
    double acc = 0.0;
    for (int64_t i = 0; i < y.value().numel(); ++i) acc += double(y.value().data()[i]) * probe.data()[i];
    return acc;
  };
  loss_value();  // fixes the probe
  for (Var& x : inputs)
    if (x.requires_grad() && x.grad().defined()) x.grad_ref().zero();  // inputs may be reused across checks
  Tape tape;
  {
    TapeScope scope(tape);
    Var y = f(inputs);
    Var l = sum(mul(y, Var(probe)));
    tape.backward(l);
  }
  for (size_t k = 0; k < inputs.size(); ++k) {
    Var& x = inputs[k];
    if (!x.requires_grad()) continue;
    ASSERT_TRUE(x.grad().defined()) << "input " << k << " received no gradient";
    float* p = x.value().data();
    for (int64_t i = 0; i < x.value().numel(); ++i) {
      const float saved = p[i];
      p[i] = saved + opt.eps;
      const double up = loss_value();
      p[i] = saved - opt.eps;
      const double down = loss_value();
      p[i] = saved;
      const double numeric = (up - down) / (2.0 * opt.eps);
      const double analytic = x.grad().data()[i];
      ASSERT_FALSE(std::isnan(analytic)) << "input " << k << "[" << i << "]: analytic gradient is NaN";
      ASSERT_LE(std::fabs(analytic - numeric), opt.atol + opt.rtol * std::fabs(numeric))
          << "input " << k << " (shape " << x.shape().str() << ") element " << i << ": analytic " << analytic
          << ", numeric " << numeric;
    }
  }
}

}  // namespace attend::testing
