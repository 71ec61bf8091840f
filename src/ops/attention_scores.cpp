#include "attend/ops/attention_scores.h"

#include <stdexcept>

#include "../kernels/attention_scores.h"

namespace attend {

Var additive_scores(const Var& qp, const Var& kp, const Var& v) {
  if (qp.ndim() != 3 || kp.ndim() != 3 || v.ndim() != 1 || qp.size(0) != kp.size(0) || qp.size(2) != kp.size(2) ||
      v.size(0) != qp.size(2)) {
    throw std::invalid_argument("additive_scores: qp " + qp.shape().str() + " ([B,T,A]), kp " + kp.shape().str() +
                                " ([B,S,A]) and v " + v.shape().str() + " ([A]) do not fit");
  }
  const int64_t B = qp.size(0), T = qp.size(1), S = kp.size(1), A = qp.size(2);
  const bool record = needs_grad({&qp, &kp, &v});
  Tensor scores = Tensor::empty(Shape{B, T, S});
  Tensor th = record ? Tensor::empty(Shape{B, T, S, A}) : Tensor();  // saved tanh, only when training
  kernels::additive_scores_forward(qp.value().data(), kp.value().data(), v.value().data(), B, T, S, A, scores.data(),
                                   record ? th.data() : nullptr);
  return make_result(std::move(scores), record, [qp, kp, v, th, B, T, S, A](Node& out) {
    kernels::additive_scores_backward(out.grad.data(), th.data(), v.value().data(), B, T, S, A,
                                      qp.requires_grad() ? qp.grad_ref().data() : nullptr,
                                      kp.requires_grad() ? kp.grad_ref().data() : nullptr,
                                      v.requires_grad() ? v.grad_ref().data() : nullptr);
  });
}

}  // namespace attend
