// attend ops: losses.
#pragma once

#include <vector>

#include "attend/autograd/variable.h"

namespace attend {

struct CrossEntropyOptions {
  int ignore_index = 0;          // targets equal to this (padding) do not count
  float label_smoothing = 0.0f;  // eps: target distribution (1-eps) one-hot + eps/V uniform (PyTorch's definition)
  // Token-level knowledge distillation (Kim & Rush 2016): with soft_targets [N,V] (a teacher's
  // next-token probabilities per row), the target distribution of row n is (1 - w) times the
  // above plus w times soft_targets[n], w = soft_weight in [0, 1]. Rows of ignored targets do
  // not count. Not owned: it must outlive the loss's backward.
  const Tensor* soft_targets = nullptr;
  float soft_weight = 0.0f;
};

// logits [N,V], targets (N ids) -> [] mean loss over the non-ignored targets (0 if there are none):
// the cross-entropy -sum_v q_nv log softmax(logits_n)_v of each row's target distribution q_n.
Var cross_entropy(const Var& logits, const std::vector<int>& targets, const CrossEntropyOptions& options = {});

}  // namespace attend
