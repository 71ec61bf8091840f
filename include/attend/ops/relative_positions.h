// attend ops: learned relative-position biases for attention scores (Shaw et al. 2018's
// distances clipped to ±K, one scalar per head and distance as in T5, Raffel et al. 2020).
#pragma once

#include "attend/autograd/variable.h"

namespace attend {

// table [H, 2K+1] (K = the largest distance told apart), T queries, S keys -> [1, H, T, S]:
//   bias[0, h, t, s] = table[h, clamp(s - t, -K, K) + K]
// to add to the scaled scores of an attention (sdpa's bias). Gradients reach the table.
Var relative_position_bias(const Var& table, int T, int S);

}  // namespace attend
