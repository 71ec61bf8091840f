#include "attend/ops/loss.h"

#include <cmath>
#include <stdexcept>
#include <vector>

#include "kernels/parallel.h"
#include "kernels/softmax.h"
#include "kernels/vec_math.h"

namespace attend {

namespace {

void check_soft_targets(const CrossEntropyOptions& opt, int64_t N, int64_t V) {
  if (!opt.soft_targets) return;
  if (!(opt.soft_weight >= 0.0f && opt.soft_weight <= 1.0f))
    throw std::invalid_argument("cross_entropy: soft_weight must be in [0, 1], got " + std::to_string(opt.soft_weight));
  const Shape want{N, V};
  if (opt.soft_targets->shape() != want)
    throw std::invalid_argument("cross_entropy: soft targets " + opt.soft_targets->shape().str() +
                                " do not match the logits " + want.str());
}

}  // namespace

Var cross_entropy(const Var& logits, const std::vector<int>& targets, const CrossEntropyOptions& opt) {
  if (logits.ndim() != 2 || logits.size(0) != static_cast<int64_t>(targets.size())) {
    throw std::invalid_argument("cross_entropy: logits " + logits.shape().str() + " do not match " +
                                std::to_string(targets.size()) + " targets");
  }
  if (!(opt.label_smoothing >= 0.0f && opt.label_smoothing < 1.0f)) {
    throw std::invalid_argument("cross_entropy: label_smoothing must be in [0, 1), got " +
                                std::to_string(opt.label_smoothing));
  }
  const int64_t N = logits.size(0), V = logits.size(1);
  check_soft_targets(opt, N, V);
  const float eps = opt.label_smoothing, w = opt.soft_targets ? opt.soft_weight : 0.0f;
  const Tensor soft = opt.soft_targets ? *opt.soft_targets : Tensor();  // shares the storage: kept for backward
  Tensor logp = Tensor::empty(logits.shape());                          // saved for backward
  const double work = 20.0 * double(N) * double(V);                     // an exp per logit, forward and backward
  kernels::parallel_ranges(N, work, [&](int64_t b, int64_t e) {
    kernels::softmax_rows(logits.value().data() + b * V, nullptr, e - b, 1, V, logp.data() + b * V,
                          /*log_output=*/true);
  });
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int y = targets[n];
    if (y == opt.ignore_index) continue;
    if (y < 0 || y >= V) {
      throw std::invalid_argument("cross_entropy: target " + std::to_string(y) + " at row " + std::to_string(n) +
                                  " is outside [0, " + std::to_string(V) + ")");
    }
    ++count;
  }
  // Each row's loss in parallel (0 at ignored rows), summed in row order: the same for any thread count.
  std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
  kernels::parallel_ranges(N, 4.0 * double(N) * double(V), [&](int64_t b, int64_t e) {
    for (int64_t n = b; n < e; ++n) {
      const int y = targets[n];
      if (y == opt.ignore_index) continue;
      const float* lp = logp.data() + n * V;
      double smooth = 0.0, teacher = 0.0;
      if (eps > 0.0f)
        for (int64_t v = 0; v < V; ++v) smooth += lp[v];
      if (w > 0.0f)
        for (int64_t v = 0; v < V; ++v) teacher += double(soft.data()[n * V + v]) * lp[v];
      row_loss[n] = (1.0 - w) * (-(1.0 - eps) * lp[y] - eps / V * smooth) - w * teacher;
    }
  });
  double total = 0.0;
  for (const double l : row_loss) total += l;
  const float inv = count ? 1.0f / static_cast<float>(count) : 0.0f;
  return make_result(Tensor::scalar(static_cast<float>(total) * inv), needs_grad({&logits}),
                     [logits, targets, logp, soft, opt, w, inv, N, V, work](Node& out) {
                       // forward: loss = mean_n -sum_v q_nv log softmax(x_n)_v  =>  dx_n = (softmax(x_n) - q_n) / count
                       const float g = out.grad.data()[0] * inv, eps = opt.label_smoothing;
                       const float hard = 1.0f - w, uniform = hard * eps / V;
                       float* dx = logits.grad_ref().data();
                       kernels::parallel_ranges(N, work, [&](int64_t b, int64_t e) {
                         thread_local std::vector<float> p;  // softmax(x_n), one row
                         p.resize(V);
                         for (int64_t n = b; n < e; ++n) {
                           const int y = targets[n];
                           if (y == opt.ignore_index) continue;
                           kernels::vexp(logp.data() + n * V, p.data(), V);
                           float* d = dx + n * V;
                           if (w > 0.0f) {
                             const float* s = soft.data() + n * V;
                             for (int64_t v = 0; v < V; ++v) d[v] += g * (p[v] - uniform - w * s[v]);
                           } else {
                             for (int64_t v = 0; v < V; ++v) d[v] += g * (p[v] - uniform);
                           }
                           d[y] -= g * hard * (1.0f - eps);
                         }
                       });
                     });
}

}  // namespace attend
