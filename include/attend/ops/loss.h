// attend ops: losses.
#pragma once

#include <vector>

#include "attend/autograd/variable.h"

namespace attend {

struct CrossEntropyOptions {
  int ignore_index = 0;          // targets equal to this (padding) do not count
  float label_smoothing = 0.0f;  // eps: target distribution (1-eps) one-hot + eps/V uniform (PyTorch's definition)
};

// logits [N,V], targets (N ids) -> [] mean loss over the non-ignored targets (0 if there are none).
Var cross_entropy(const Var& logits, const std::vector<int>& targets, const CrossEntropyOptions& options = {});

}  // namespace attend
