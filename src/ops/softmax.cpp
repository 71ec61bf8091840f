#include "attend/ops/softmax.h"

#include <cmath>
#include <stdexcept>

#include "kernels/softmax.h"
#include "kernels/sparse_normalizers.h"

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

namespace {

// Sparse normalisers share one backward form: on the support, dx = s * dy - s (s . dy) / sum(s),
// with s = 1 for sparsemax (Martins & Astudillo 2016, eq. 14) and s = sqrt(p) for entmax-1.5
// (Peters et al. 2019, Prop. 2: s = p^(2 - alpha)); off the support dx = 0.
Var sparse_impl(const Var& x, const Tensor& mask, bool entmax) {
  const char* name = entmax ? "entmax15" : "sparsemax";
  const int64_t rpm = check_mask(x.shape(), mask, name);
  const int64_t S = x.size(-1), rows = x.value().numel() / std::max<int64_t>(S, 1);
  Tensor y = Tensor::empty(x.shape());
  std::vector<float> scratch(static_cast<size_t>(S));
  const float* m = mask.defined() ? mask.data() : nullptr;
  if (entmax)
    kernels::entmax15_rows(x.value().data(), m, rows, rpm, S, y.data(), scratch.data());
  else
    kernels::sparsemax_rows(x.value().data(), m, rows, rpm, S, y.data(), scratch.data());
  return make_result(std::move(y), needs_grad({&x}), [x, rows, S, entmax](Node& out) {
    const float* p = out.value.data();
    const float* dy = out.grad.data();
    float* dx = x.grad_ref().data();
    for (int64_t r = 0; r < rows; ++r) {
      const float* pr = p + r * S;
      const float* gr = dy + r * S;
      double s_dot = 0.0, s_sum = 0.0;
      for (int64_t k = 0; k < S; ++k) {
        if (pr[k] <= 0.0f) continue;
        const double s = entmax ? std::sqrt(double(pr[k])) : 1.0;
        s_dot += s * gr[k];
        s_sum += s;
      }
      if (s_sum == 0.0) continue;  // fully masked row
      const double c = s_dot / s_sum;
      for (int64_t k = 0; k < S; ++k) {
        if (pr[k] <= 0.0f) continue;
        const double s = entmax ? std::sqrt(double(pr[k])) : 1.0;
        dx[r * S + k] += static_cast<float>(s * (gr[k] - c));
      }
    }
  });
}

}  // namespace

Var softmax(const Var& x, const Tensor& mask) { return softmax_impl(x, mask, false); }

Var renormalize(const Var& x) {
  if (x.ndim() < 1) throw std::invalid_argument("renormalize: needs at least 1 dim, got a scalar");
  const int64_t S = x.size(-1), rows = x.value().numel() / std::max<int64_t>(S, 1);
  Tensor y = Tensor::empty(x.shape()), totals = Tensor::empty(Shape{rows});
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x.value().data() + r * S;
    double t = 0.0;
    for (int64_t s = 0; s < S; ++s) t += xr[s];
    totals.data()[r] = static_cast<float>(t);
    for (int64_t s = 0; s < S; ++s) y.data()[r * S + s] = t > 0.0 ? static_cast<float>(xr[s] / t) : 0.0f;
  }
  return make_result(std::move(y), needs_grad({&x}), [x, totals, rows, S](Node& out) {
    // forward: y = x / t, t = sum(x)  =>  dx = (dy - sum(dy * y)) / t
    for (int64_t r = 0; r < rows; ++r) {
      const float t = totals.data()[r];
      if (t <= 0.0f) continue;
      const float* yr = out.value.data() + r * S;
      const float* gr = out.grad.data() + r * S;
      double dot = 0.0;
      for (int64_t s = 0; s < S; ++s) dot += double(gr[s]) * yr[s];
      float* dr = x.grad_ref().data() + r * S;
      for (int64_t s = 0; s < S; ++s) dr[s] += static_cast<float>((gr[s] - dot) / t);
    }
  });
}
Var sparsemax(const Var& x, const Tensor& mask) { return sparse_impl(x, mask, false); }
Var entmax15(const Var& x, const Tensor& mask) { return sparse_impl(x, mask, true); }

Normalizer parse_normalizer(const std::string& name) {
  if (name == "softmax") return Normalizer::kSoftmax;
  if (name == "sparsemax") return Normalizer::kSparsemax;
  if (name == "entmax15" || name == "entmax-1.5") return Normalizer::kEntmax15;
  throw std::invalid_argument("unknown normalizer '" + name + "' (expected softmax, sparsemax or entmax15)");
}

std::string to_string(Normalizer n) {
  switch (n) {
    case Normalizer::kSoftmax:
      return "softmax";
    case Normalizer::kSparsemax:
      return "sparsemax";
    case Normalizer::kEntmax15:
      return "entmax15";
  }
  return "?";
}

Var normalize(const Var& x, const Tensor& mask, Normalizer n) {
  switch (n) {
    case Normalizer::kSoftmax:
      return softmax(x, mask);
    case Normalizer::kSparsemax:
      return sparsemax(x, mask);
    case Normalizer::kEntmax15:
      return entmax15(x, mask);
  }
  return softmax(x, mask);
}
Var log_softmax(const Var& x, const Tensor& mask) { return softmax_impl(x, mask, true); }

}  // namespace attend
