// attend ops: multi-head scaled-dot-product attention, fused (Vaswani et al. 2017, eq. 1;
// FlashAttention-2 tiling, Dao 2023) with forward, backward and weights on request.
//
// Layout (contiguous, row-major): B batch, H query heads, Hkv key/value heads (Hkv divides H:
// grouped-query attention; Hkv = 1: multi-query), T queries, S keys, D head dim.
//   q [B, H, T, D]   k, v [B, Hkv, S, D]   ->   out [B, H, T, D], lse [B, H, T]
//   bias (optional) [B or 1, H or 1, T, S], added to the scaled scores
// Extra memory is O(T·D) (the per-row log-sum-exp and per-thread tiles), never O(T·S).
// Masks: key lengths, causal, sliding window (all relative to the diagonal: top-left aligned,
// query t with key t, or bottom-right aligned, the last query with the last key), bias = -inf.
// A query row with no allowed key gives zeros (and lse = -inf) and passes no gradient.
#pragma once

#include <cstdint>
#include <vector>

#include "attend/autograd/variable.h"

namespace attend {

enum class SdpaPath { kFused, kReference };  // kReference: plain loops, the test oracle

struct SdpaOptions {
  float scale = 0.0f;               // 0 = 1 / sqrt(D)
  std::vector<int> key_lengths;     // [B], each in [0, S]: keys at s >= length are masked; empty = S
  bool causal = false;              // key s is masked when s > diag(t)
  bool bottom_right = false;        // diag(t) = t + length - T instead of t
  int window_left = -1;             // sliding window: mask s < diag(t) - left (-1 = unbounded)
  int window_right = -1;            //                 mask s > diag(t) + right (-1 = unbounded)
  std::vector<float> alibi_slopes;  // [H]: adds -slope_h · |diag(t) - s| (Press et al. 2022)
  float softcap = 0.0f;             // > 0: score = cap · tanh(score / cap), before bias (Gemma 2)
  float dropout = 0.0f;             // on the weights, with a counter-based generator:
  uint64_t seed = 0;                // the same (seed, b, h, t, s) always drops the same weight
  SdpaPath path = SdpaPath::kFused;
};

struct SdpaResult {
  Tensor out;  // [B, H, T, D]
  Tensor lse;  // [B, H, T]: log Σ_s exp(score), -inf for a row with no allowed key
};
SdpaResult sdpa_forward(const Tensor& q, const Tensor& k, const Tensor& v, const SdpaOptions& options = {},
                        const Tensor& bias = Tensor());

struct SdpaGrads {
  Tensor dq, dk, dv;
  Tensor dbias;  // the bias's shape (summed over broadcast dimensions); undefined without a bias
};
// From the forward's out and lse (FlashAttention-2 recomputes the weights from lse).
SdpaGrads sdpa_backward(const Tensor& q, const Tensor& k, const Tensor& v, const SdpaResult& forward,
                        const Tensor& dout, const SdpaOptions& options = {}, const Tensor& bias = Tensor());

// The exact normalised weights exp(score - lse) (before dropout) of heads [h_begin, h_end) and
// query rows [t_begin, t_end): [B, h_end - h_begin, t_end - t_begin, S], from the forward's lse.
Tensor sdpa_weights(const Tensor& q, const Tensor& k, const Tensor& lse, const SdpaOptions& options, const Tensor& bias,
                    int h_begin, int h_end, int t_begin, int t_end);

// The differentiable op: out [B, H, T, D]; gradients reach q, k, v and the bias.
Var sdpa(const Var& q, const Var& k, const Var& v, const SdpaOptions& options = {}, const Var& bias = Var());

}  // namespace attend
