// attend ops: fused attention score kernels that are not a plain matrix product.
#pragma once

#include "attend/autograd/variable.h"

namespace attend {

// Additive / concat score (Bahdanau et al. 2015, eq. 6; Luong et al. 2015 "concat"):
//   score[b,t,s] = Σ_a v[a] · tanh(qp[b,t,a] + kp[b,s,a])
// qp [B,T,A] (the projected queries W_q q), kp [B,S,A] (the projected keys W_k k, computed once
// per source sequence), v [A] -> [B,T,S]. Fused so the [B,T,S,A] tanh is never an autograd node.
Var additive_scores(const Var& qp, const Var& kp, const Var& v);

// Location features (Chorowski et al. 2015, eq. 9: f_t = F * alpha_{t-1}): a convolution over
// source positions of the previous weights, zero-padded so the output keeps every position.
// alpha [B,S], filters [K,R] (R odd) -> [B,S,K] with out[b,s,k] = sum_j F[k,j] alpha[b, s + j - R/2].
Var position_conv(const Var& alpha, const Var& filters);

// Monotonic attention's expected alignment (Raffel et al. 2017, eq. 9), one decoder step:
//   q_0 = prev_0,  q_j = (1 - p_{j-1}) q_{j-1} + prev_j,  alpha_j = p_j q_j
// p [B,S] the probabilities of stopping at each position, prev [B,S] the previous step's
// alignment -> alpha [B,S]. A scan in j, linear and without the division of the cumprod
// closed form, so it stays stable when the products underflow.
Var monotonic_alignment(const Var& p, const Var& prev);

// Forward attention (Zhang et al. 2018, eq. 8-10 and 15), one decoder step, fused:
//   mix_n = (1 - u) prev_n + u prev_{n-1}  (prev_{-1} = 0),  alpha_n = mix_n y_n / sum_m mix_m y_m
// prev [B,S] the previous alignment, y [B,S] this step's attention weights, u [B,1] the
// transition agent's probability of moving (an undefined u means 1/2: the plain rule
// alpha ∝ (prev_n + prev_{n-1}) y_n). A row whose sum is 0 stays 0. One pass forward and one
// backward instead of the ~8 composed ops (bench/mechanism_step_bench: the comparison).
Var forward_alignment(const Var& prev, const Var& y, const Var& u = Var());
// The same recursion in the log domain, as forward attention with a softmax normaliser runs it:
//   m_n = log((1 - u) e^{lp_n} + u e^{lp_{n-1}}),  log alpha_n = m_n + ly_n - logsumexp_k(m_k + ly_k)
// log_prev [B,S] = log alpha_{t-1}, log_y [B,S] = log-softmax of the scores (-inf where masked)
// -> log alpha_t [B,S]. Its Jacobians are those of a softmax and of log-add-exp (entries in
// [0, 1]), so gradients stay bounded where the probability form divides by a vanishing sum
// (on G2P that overflowed to non-finite gradients). A row with no possible position stays -inf.
Var forward_alignment_log(const Var& log_prev, const Var& log_y, const Var& u = Var());

}  // namespace attend
