// attend kernels: additive attention scores. Raw pointers, no allocation.
#pragma once

#include <cstdint>

namespace attend::kernels {

// scores[b,t,s] = Σ_a v[a] tanh(qp[b,t,a] + kp[b,s,a]); also writes th[b,t,s,a] = that tanh when th != null.
void additive_scores_forward(const float* qp, const float* kp, const float* v, int64_t B, int64_t T, int64_t S,
                             int64_t A, float* scores, float* th);

// Given dscores [B,T,S] and the saved th, accumulates dqp [B,T,A], dkp [B,S,A], dv [A] (each may be null).
void additive_scores_backward(const float* dscores, const float* th, const float* v, int64_t B, int64_t T, int64_t S,
                              int64_t A, float* dqp, float* dkp, float* dv);

}  // namespace attend::kernels
