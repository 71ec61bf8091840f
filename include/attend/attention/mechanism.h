// attend attention: the mechanisms a decoder attends with, step by step.
//
// A mechanism = a score (dot, scaled-dot, general, additive) x a normaliser (softmax,
// sparsemax, entmax-1.5) x a constraint or alignment model:
//   soft     (= global = dynamic) every source position, recomputed at every step
//   static   one distribution per sequence, from the encoder summary, reused at every step
//   local-m  Luong et al. 2015: a window [p_t - D, p_t + D] around p_t = t
//   local-p  Luong et al. 2015: a window around a predicted p_t, times a Gaussian
//   location Chorowski et al. 2015: the additive score also sees a convolution of the
//            previous step's weights (where it attended last)
//   coverage Tu et al. 2016 / See et al. 2017: the additive score also sees the weights summed
//            over all previous steps, with See et al.'s coverage loss as an option
//   monotonic Raffel et al. 2017: left to right, stopping at each position with probability
//            sigmoid(score + r); expected alignments in training, a hard pointer at inference
//   forward  Zhang et al. 2018: the alignment moves forward by at most one position per step;
//            forward-ta adds their transition agent, which learns when to move
//   hard     Xu et al. 2015: one source position per step, sampled from the soft distribution
//            in training (REINFORCE with a moving-average baseline and an entropy bonus, or a
//            straight-through Gumbel-softmax), the argmax at inference
// The decoder carries an AttentionState from step to step (the mechanisms that need history
// keep it there), so steps can be batched, gathered for beam search and checkpointed.
#pragma once

#include <memory>
#include <string>

#include "attend/attention/attention.h"
#include "attend/nn/linear.h"
#include "attend/random.h"

namespace attend {

enum class MechanismKind {
  kSoft, kStatic, kLocalM, kLocalP, kLocation, kCoverage, kMonotonic, kForward, kForwardTA, kHard
};
// "soft" | "global" | "static" | "local-m" | "local-p" | "location" | "coverage" | "monotonic" |
// "forward" | "forward-ta" | "hard"
MechanismKind parse_mechanism(const std::string& name);
std::string to_string(MechanismKind kind);

// How hard attention is trained: REINFORCE (Xu et al. 2015, eq. 12: the score function
// estimator) or a straight-through Gumbel-softmax (Jang et al. 2017; Bengio et al. 2013).
enum class HardEstimator { kReinforce, kGumbel };
HardEstimator parse_hard_estimator(const std::string& name);  // "reinforce" | "gumbel"
std::string to_string(HardEstimator e);

struct AttentionConfig {
  MechanismKind kind = MechanismKind::kSoft;
  ScoreKind score = ScoreKind::kAdditive;
  Normalizer normalizer = Normalizer::kSoftmax;
  int attention_dim = 128;  // additive score, and local-p's position predictor
  int window = 5;           // local-m, local-p: D, the half-width of the window
  float sigma = 0.0f;       // local-p: width of the Gaussian; 0 = D/2 (Luong et al.)
  float position_rate = 1.0f;  // local-m: p_t = rate * t (1 = Luong et al.'s p_t = t; 0 = not yet
                               // chosen: attend train sets it from the training data, "auto")
  int location_filters = 8;   // location: K convolution filters
  int location_width = 11;    // location: their width R (odd)
  float coverage_loss = 0.0f; // coverage: weight of See et al.'s loss sum_t sum_s min(a_t, c_t); 0 = off
  HardEstimator hard_estimator = HardEstimator::kReinforce;  // hard
  float hard_mix = 0.5f;        // hard, REINFORCE: share of sentences that use the expected context
                                // instead of a sample (Xu et al. 2015, sec. 4.1); 0 = always sample
  float entropy_bonus = 0.01f;  // hard, REINFORCE: lambda_e, weight of the entropy of a_t
  float gumbel_temperature = 1.0f;  // hard, Gumbel: tau
  void validate() const;    // throws std::invalid_argument naming the field and value
};

struct AttentionState {
  int step = 0;       // t, the output position being predicted
  Var previous;       // location, monotonic, forward: a_{t-1} [B,S] (undefined at t = 0)
  Var log_alignment;  // forward, forward-ta with softmax: log a_{t-1} [B,S], what the recursion runs on
  Var transition;     // forward-ta: u_{t-1} [B,1], the transition agent's probability of moving
  Var coverage;       // coverage: c_t = sum of a_tau over tau < t, [B,S] (undefined at t = 0)
  Var penalty;        // coverage loss accumulated over the steps so far, [] (undefined = 0)
  bool hard = false;  // inference: monotonic attention moves a hard pointer instead of expecting,
                      // hard attention takes the argmax instead of sampling
  std::vector<int> pointer;  // monotonic, hard: each row's attended position (-1 before the first)
  Rng* sampler = nullptr;    // training: hard attention samples from it, monotonic draws its noise
                             // (null: inference behaviour, argmax / no noise)
  Var sampled_log_prob;      // hard, REINFORCE: sum over steps of log a_t(s~_t) for sampled rows, [B]
  Var entropy;               // hard, REINFORCE: sum over steps and rows of H(a_t), []
};

struct AttentionMemory {
  SoftAttention::Memory scorer;  // keys prepared for the score, values, padding mask [B,S]
  std::vector<int> lengths;      // [B] source lengths
  Var static_weights;            // static: [B,1,S]
  Var static_context;            // static: [B,1,Dv]
};

class AttentionMechanism : public Module {
 public:
  // keys, values [B,S,D]; mask [B,S]; summary [B,Dq] (the encoder summary the decoder starts
  // from; used by static attention).
  virtual AttentionMemory prepare(const Var& keys, const Var& values, const Tensor& mask, const Var& summary) const;
  // query [B,1,Dq] at step state.step -> context [B,1,Dv], weights [B,1,S]; advances the state.
  virtual AttentionResult step(const Var& query, const AttentionMemory& memory, AttentionState& state) const = 0;
  const AttentionConfig& config() const { return config_; }
  const SoftAttention& scorer() const { return scorer_; }
  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override;

 protected:
  AttentionMechanism(const AttentionConfig& config, int query_dim, int key_dim, Rng& rng);
  AttentionConfig config_;
  SoftAttention scorer_;
};

// The mechanism config.kind names; query_dim is the decoder state size, key_dim the encoder's.
std::shared_ptr<AttentionMechanism> make_attention(const AttentionConfig& config, int query_dim, int key_dim, Rng& rng);

// Luong et al. 2015, eq. 10: the Gaussian that local-p multiplies its weights with,
// exp(-(s - p)^2 / (2 sigma^2)), sigma = D / 2. p [B,1,1] -> [B,1,S].
Var gaussian_around(const Var& p, int S, float sigma);

}  // namespace attend
