// attend attention: the general mechanism. Given queries, keys and values, compute a weight for
// every value from the query and its key, and return the weighted sum of the values.
//
//   weights[b,t,:] = normalise(score(query[b,t], keys[b,:]), mask[b,:])
//   context[b,t]   = Σ_s weights[b,t,s] · values[b,s]
//
// Scores (Luong et al. 2015, eq. 8; Bahdanau et al. 2015, eq. 6; Vaswani et al. 2017, eq. 1):
//   dot         qᵀk                        (Dq == Dk)
//   scaled-dot  qᵀk / sqrt(Dk)             (Dq == Dk)
//   general     qᵀ W k,  W [Dq, Dk]
//   additive    vaᵀ tanh(q Wq + k Wk),  Wq [Dq, A], Wk [Dk, A], va [A]
// Normaliser over the unmasked source positions: softmax (soft = global = dynamic attention),
// or sparsemax / entmax-1.5, which can put exactly zero weight on positions.
#pragma once

#include <string>

#include "attend/nn/module.h"
#include "attend/ops/softmax.h"
#include "attend/random.h"

namespace attend {

enum class ScoreKind { kDot, kScaledDot, kGeneral, kAdditive };
ScoreKind parse_score(const std::string& name);  // "dot" | "scaled-dot" | "general" | "additive"
std::string to_string(ScoreKind kind);

struct ScoreParams {
  Var W;           // general: [Dq, Dk]
  Var Wq, Wk, va;  // additive: [Dq, A], [Dk, A], [A]
};

struct AttentionResult {
  Var context;  // [B, T, Dv]
  Var weights;  // [B, T, S]
  // A decoding step's values for pictures, [B, K], named by the mechanism's registry entry
  // (MechanismInfo::trace), e.g. local-p's predicted centre p_t; empty for most mechanisms.
  Tensor trace;
};

// Throws std::invalid_argument naming what does not fit: ranks, batch/length mismatches, the
// mask's shape, and zero sizes that have no meaning (S, Dq, Dk or Dv = 0). B = 0 or T = 0 is
// valid: the result is empty.
void check_attention_inputs(const Var& query, const Var& keys, const Var& values, const Tensor& mask);

// The general definition, in one call. query [B,T,Dq], keys [B,S,Dk], values [B,S,Dv],
// mask [B,S] (1 = may attend; undefined = all) -> context [B,T,Dv], weights [B,T,S].
AttentionResult attention(const Var& query, const Var& keys, const Var& values, const Tensor& mask, ScoreKind score,
                          const ScoreParams& params = {}, Normalizer normalizer = Normalizer::kSoftmax);

// The same mechanism as a layer that owns its score parameters and is called once per decoder
// step. prepare() does the per-source work once (Wk·keys for additive, W·keys for general), so
// a decoder step costs only the query side.
class SoftAttention : public Module {
 public:
  struct Memory {
    Var keys;     // [B,S,X]: the keys as the score needs them (projected for general/additive)
    Var values;   // [B,S,Dv]
    Tensor mask;  // [B,S]
  };
  SoftAttention() = default;
  // attention_dim is used by the additive score only.
  SoftAttention(ScoreKind score, int query_dim, int key_dim, int attention_dim, Rng& rng,
                Normalizer normalizer = Normalizer::kSoftmax);
  Memory prepare(const Var& keys, const Var& values, const Tensor& mask) const;
  AttentionResult operator()(const Var& query, const Memory& memory) const;  // query [B,T,Dq]
  // The same in two halves, for mechanisms that constrain where attention may go:
  // raw scores [B,T,S], then weights and context under a mask [B,S] (memory.mask is ignored).
  Var scores(const Var& query, const Memory& memory) const;
  AttentionResult weigh(const Var& scores, const Memory& memory, const Tensor& mask) const;
  // Additive score with an extra key-side term: va^T tanh(q Wq + k Wk + extra), extra [B,S,A]
  // (location features, coverage). Only for score == additive.
  Var additive_scores_with(const Var& query, const Memory& memory, const Var& extra) const;
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;
  ScoreKind score() const { return score_; }
  Normalizer normalizer() const { return normalizer_; }
  const ScoreParams& params() const { return params_; }

 private:
  ScoreKind score_ = ScoreKind::kDot;
  Normalizer normalizer_ = Normalizer::kSoftmax;
  int query_dim_ = 0, key_dim_ = 0;
  ScoreParams params_;
};

}  // namespace attend
