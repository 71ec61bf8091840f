// attend ops: softmax and log-softmax over the last dimension, with an optional mask.
//
// x [R..., S]; mask [M, S] with 1 = may attend, 0 = masked, where the R rows of x are split
// into M equal consecutive groups that share a mask row, e.g. x [B,T,S] with mask [B,S].
// Masked positions get weight exactly 0 (log-softmax: -inf). A row with every position
// masked is defined as all zeros (log-softmax: all -inf) and passes no gradient: never NaN.
#pragma once

#include <string>

#include "attend/autograd/variable.h"

namespace attend {

Var softmax(const Var& x, const Tensor& mask = Tensor());
Var log_softmax(const Var& x, const Tensor& mask = Tensor());

// Sparse normalisers with the same mask convention; both can give exact zeros.
// sparsemax (Martins & Astudillo 2016): the closest point of the simplex to x.
Var sparsemax(const Var& x, const Tensor& mask = Tensor());
// entmax-1.5 (Peters et al. 2019): between softmax and sparsemax; p = max(x/2 - tau, 0)^2.
Var entmax15(const Var& x, const Tensor& mask = Tensor());

// x / sum(x) over the last dimension, for non-negative x; a row summing to 0 stays 0.
Var renormalize(const Var& x);

// A normaliser chosen by name, for attention.
enum class Normalizer { kSoftmax, kSparsemax, kEntmax15 };
Normalizer parse_normalizer(const std::string& name);  // "softmax" | "sparsemax" | "entmax15"
std::string to_string(Normalizer n);
Var normalize(const Var& x, const Tensor& mask, Normalizer n);

}  // namespace attend
