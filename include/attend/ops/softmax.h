// attend ops: softmax and log-softmax over the last dimension, with an optional mask.
//
// x [R..., S]; mask [M, S] with 1 = may attend, 0 = masked, where the R rows of x are split
// into M equal consecutive groups that share a mask row, e.g. x [B,T,S] with mask [B,S].
// Masked positions get weight exactly 0 (log-softmax: -inf). A row with every position
// masked is defined as all zeros (log-softmax: all -inf) and passes no gradient: never NaN.
#pragma once

#include "attend/autograd/variable.h"

namespace attend {

Var softmax(const Var& x, const Tensor& mask = Tensor());
Var log_softmax(const Var& x, const Tensor& mask = Tensor());

}  // namespace attend
