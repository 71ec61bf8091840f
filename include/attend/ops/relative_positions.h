// attend ops: learned relative-position biases for attention scores (Shaw et al. 2018's
// distances clipped to ±K, one scalar per head and distance as in T5, Raffel et al. 2020).
#pragma once

#include <vector>

#include "attend/autograd/variable.h"

namespace attend {

// table [H, 2K+1] (K = the largest distance told apart), T queries, S keys -> [1, H, T, S]:
//   bias[0, h, t, s] = table[h, clamp(s - t, -K, K) + K]
// to add to the scaled scores of an attention (sdpa's bias). Gradients reach the table.
Var relative_position_bias(const Var& table, int T, int S);

// Decoding over a KV cache (no gradient): the newest query of sequence b, at position
// lengths[b] - 1, against the cache's slots -> [B, H, 1, capacity] for sdpa_decode:
//   bias[b, h, 0, s] = table[h, clamp(s - lengths[b] + 1, -K, K) + K]
// the last row of relative_position_bias(table, L, L) for L = lengths[b] (slots from lengths[b]
// on are masked by the decoding). Each length must be in [1, capacity].
Tensor relative_position_bias_last(const Tensor& table, const std::vector<int>& lengths, int capacity);

}  // namespace attend
