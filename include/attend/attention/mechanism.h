// attend attention: the mechanisms a decoder attends with, step by step.
//
// A mechanism = a score (dot, scaled-dot, general, additive) x a normaliser (softmax,
// sparsemax, entmax-1.5) x a constraint or alignment model. Each mechanism is one file in
// src/attention/mechanisms/ with its entry in the registry (registry.h): `attend train --help`,
// docs/attention.md and Python's help(attend.attention) list them with their papers and options.
// The decoder carries an AttentionState from step to step (the mechanisms that need history
// keep it there), so steps can be batched, gathered for beam search and checkpointed.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "attend/attention/attention.h"
#include "attend/nn/linear.h"
#include "attend/random.h"

namespace attend {

// How hard attention is trained: REINFORCE (Xu et al. 2015, eq. 12: the score function
// estimator) or a straight-through Gumbel-softmax (Jang et al. 2017; Bengio et al. 2013).
// (The values of hard attention's "hard_estimator" option.)
enum class HardEstimator { kReinforce, kGumbel };

const std::string& default_mechanism();  // registry.h: the first mechanism by rank (soft)

// What a model's attention is: the mechanism (a registered name, registry.h), the score, the
// normaliser, and the mechanism's own options by key (absent = the registry's default).
struct AttentionConfig {
  std::string mechanism = default_mechanism();  // registry.h
  ScoreKind score = ScoreKind::kAdditive;
  Normalizer normalizer = Normalizer::kSoftmax;
  int attention_dim = 128;  // the additive score's size A (and what mechanisms size by it)
  std::map<std::string, double> options;
  // The value of one of the mechanism's options (its default when unset); a key the mechanism
  // does not have throws std::invalid_argument.
  double option(const std::string& key) const;
  int int_option(const std::string& key) const { return static_cast<int>(option(key)); }
  // Throws std::invalid_argument naming the field and value: an unknown mechanism, an option it
  // does not have or out of its range, a score it cannot use.
  void validate() const;
  // The registry's name for `mechanism` (aliases resolved).
  std::string canonical_mechanism() const;
};
// The attention part of a model's config.json: "attention", "score", "normalizer",
// "attention_dim" and the mechanism's options (all of them, defaults included).
void to_json(nlohmann::json& j, const AttentionConfig& c);
void from_json(const nlohmann::json& j, AttentionConfig& c);  // validates; errors name the field
// The keys from_json reads, for a caller that checks a JSON object for unknown fields.
std::vector<std::string> attention_json_keys(const std::string& mechanism);

// What a mechanism carries for each batch row from one step to the next, in slots that each
// mechanism numbers for itself (its file names them). Beam search reorders every slot at once
// (gather), so no mechanism can keep per-row state that a search would leave behind.
struct AttentionState {
  int step = 0;                            // t, the output position being predicted
  bool inference = false;                  // decoding: hard decisions (pointers, argmax) instead of expectations
  Rng* sampler = nullptr;                  // training: what stochastic mechanisms sample from (null: inference)
  std::vector<Var> rows;                   // slot i: [B, ...], or undefined before it is set
  std::vector<std::vector<int>> row_ints;  // slot i: [B], or empty
  // Training: the mechanism's loss terms summed over the steps (see extra_loss); not per row.
  std::vector<Var> sums;

  Var& row(size_t slot);
  const Var& row(size_t slot) const;  // undefined if never set
  std::vector<int>& ints(size_t slot);
  Var& sum(size_t slot);
  const Var& sum(size_t slot) const;
  // Row r of the result is row rows[r] of this state, in every slot.
  AttentionState gather(const std::vector<int>& rows) const;
};

// What a mechanism prepares once per source (prepare()), for every step of its decoding.
struct AttentionMemory {
  SoftAttention::Memory scorer;  // keys prepared for the score, values, padding mask [B,S]
  std::vector<int> lengths;      // [B] source lengths
  Var static_weights;            // static: [B,1,S]
  Var static_context;            // static: [B,1,Dv]
  std::vector<Var> rows;         // more per-source tensors a mechanism prepares, [B, ...] each, in
                                 // slots it numbers (e.g. the keys of a second score)
  // Row r of the result is source rows[r] (beam search repeats each source for its beams).
  AttentionMemory gather(const std::vector<int>& rows) const;
};

class AttentionMechanism : public Module {
 public:
  // keys, values [B,S,D]; mask [B,S]; summary [B,Dq] (the encoder summary the decoder starts
  // from; used by static attention).
  virtual AttentionMemory prepare(const Var& keys, const Var& values, const Tensor& mask, const Var& summary) const;
  // query [B,1,Dq] at step state.step -> context [B,1,Dv], weights [B,1,S]; advances the state.
  virtual AttentionResult step(const Var& query, const AttentionMemory& memory, AttentionState& state) const = 0;
  // The mechanism's terms of the training loss, from the state after the last step (coverage's
  // loss, hard attention's REINFORCE and entropy terms), already weighted, per target token:
  // `log_likelihood` [B] is each sentence's log p(y | x) (a constant reward), `per_token`
  // 1 / the batch's target tokens. Undefined when there are none.
  virtual Var extra_loss(const AttentionState& final_state, const std::vector<double>& log_likelihood,
                         float per_token) const;
  // Whether the context is the weights times the values, sum_s a_s v_s (true for most mechanisms).
  // The decoder then precomputes the values' part of its attentional layer once per source
  // (Seq2Seq::precompute_memory_combined); a mechanism whose context is anything else (multi-head
  // attention projects its heads' contexts) says false.
  virtual bool context_is_weighted_values() const { return true; }
  // Whether extra_loss needs each sentence's log-likelihood (the caller computes it only then).
  virtual bool needs_log_likelihood() const { return false; }
  // True for plain soft attention with softmax, whose decoding step has a fused kernel.
  virtual bool is_plain_soft() const { return false; }
  const AttentionConfig& config() const { return config_; }
  const SoftAttention& scorer() const { return scorer_; }
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;

 protected:
  AttentionMechanism(const AttentionConfig& config, int query_dim, int key_dim, Rng& rng);
  AttentionConfig config_;
  SoftAttention scorer_;
};

// The mechanism config.mechanism names (registry.h); query_dim is the decoder state size, key_dim
// the encoder's.
std::shared_ptr<AttentionMechanism> make_attention(const AttentionConfig& config, int query_dim, int key_dim, Rng& rng);

// Luong et al. 2015, eq. 10: the Gaussian that local-p multiplies its weights with,
// exp(-(s - p)^2 / (2 sigma^2)), sigma = D / 2. p [B,1,1] -> [B,1,S].
Var gaussian_around(const Var& p, int S, float sigma);
// The monotonic head of Raffel et al. 2017, shared by monotonic and MoChA attention:
// stop probabilities p = sigmoid(e + r) [B,S] from energies e [B,S] and the offset r [1], zero on
// padding, with Gaussian noise N(0, 1) before the sigmoid while training (sec. 2.3), which pushes
// them towards 0 or 1 so that training's expected alignment matches decoding's hard pointer.
Var monotonic_stop_probabilities(const Var& energies, const Var& r, const Tensor& mask, const AttentionState& st);
// Training: the expected alignment alpha_t [B,S] (eq. 9) from p and alpha_{t-1} (undefined before
// the first step: all mass at position 0).
Var monotonic_expected_alignment(const Var& p, const Var& previous);
// Decoding: moves each row's pointer to the first j at or after it with p_j >= 1/2 within the
// row's length, and returns each row's endpoint, -1 once the pointer has run off the end.
std::vector<int> advance_monotonic_pointers(const Tensor& p, const std::vector<int>& lengths,
                                            std::vector<int>& pointer);

// The window [centre - D, centre + D] of each row, intersected with the padding mask: [B,S].
Tensor window_mask(const Tensor& padding, const std::vector<float>& centre, int D);

}  // namespace attend
