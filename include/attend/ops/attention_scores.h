// attend ops: fused attention score kernels that are not a plain matrix product.
#pragma once

#include "attend/autograd/variable.h"

namespace attend {

// Additive / concat score (Bahdanau et al. 2015, eq. 6; Luong et al. 2015 "concat"):
//   score[b,t,s] = Σ_a v[a] · tanh(qp[b,t,a] + kp[b,s,a])
// qp [B,T,A] (the projected queries W_q q), kp [B,S,A] (the projected keys W_k k, computed once
// per source sequence), v [A] -> [B,T,S]. Fused so the [B,T,S,A] tanh is never an autograd node.
Var additive_scores(const Var& qp, const Var& kp, const Var& v);

}  // namespace attend
