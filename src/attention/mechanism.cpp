#include "attend/attention/mechanism.h"

#include <limits>

#include <cmath>
#include <stdexcept>

#include "attend/nn/init.h"
#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/reduce.h"
#include "attend/ops/matmul.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"

namespace attend {

MechanismKind parse_mechanism(const std::string& name) {
  if (name == "soft" || name == "global" || name == "dynamic") return MechanismKind::kSoft;
  if (name == "static") return MechanismKind::kStatic;
  if (name == "local-m") return MechanismKind::kLocalM;
  if (name == "local-p") return MechanismKind::kLocalP;
  if (name == "location") return MechanismKind::kLocation;
  if (name == "coverage") return MechanismKind::kCoverage;
  if (name == "monotonic") return MechanismKind::kMonotonic;
  if (name == "forward") return MechanismKind::kForward;
  if (name == "forward-ta") return MechanismKind::kForwardTA;
  if (name == "hard") return MechanismKind::kHard;
  throw std::invalid_argument("unknown attention '" + name +
                              "' (this build has soft, static, hard, local-m, local-p, location, coverage, monotonic, "
                              "forward and forward-ta)");
}

std::string to_string(MechanismKind kind) {
  switch (kind) {
    case MechanismKind::kSoft: return "soft";
    case MechanismKind::kStatic: return "static";
    case MechanismKind::kLocalM: return "local-m";
    case MechanismKind::kLocalP: return "local-p";
    case MechanismKind::kLocation: return "location";
    case MechanismKind::kCoverage: return "coverage";
    case MechanismKind::kMonotonic: return "monotonic";
    case MechanismKind::kForward: return "forward";
    case MechanismKind::kForwardTA: return "forward-ta";
    case MechanismKind::kHard: return "hard";
  }
  return "?";
}

HardEstimator parse_hard_estimator(const std::string& name) {
  if (name == "reinforce") return HardEstimator::kReinforce;
  if (name == "gumbel") return HardEstimator::kGumbel;
  throw std::invalid_argument("unknown hard-attention estimator '" + name + "' (expected reinforce or gumbel)");
}

std::string to_string(HardEstimator e) { return e == HardEstimator::kReinforce ? "reinforce" : "gumbel"; }

void AttentionConfig::validate() const {
  if (attention_dim < 1) throw std::invalid_argument("attention: attention_dim must be >= 1, got " + std::to_string(attention_dim));
  if (window < 0) throw std::invalid_argument("attention: --window must be >= 0, got " + std::to_string(window));
  if ((kind == MechanismKind::kLocation || kind == MechanismKind::kCoverage) && score != ScoreKind::kAdditive)
    throw std::invalid_argument("attention: " + to_string(kind) + " extends the additive score; got --score " + to_string(score));
  if (kind == MechanismKind::kLocation && (location_filters < 1 || location_width < 1 || location_width % 2 == 0))
    throw std::invalid_argument("attention: location needs >= 1 filters of odd width, got " +
                                std::to_string(location_filters) + " of width " + std::to_string(location_width));
  if (!(coverage_loss >= 0.0f)) throw std::invalid_argument("attention: --coverage-loss must be >= 0, got " + std::to_string(coverage_loss));
  if (!(hard_mix >= 0.0f && hard_mix <= 1.0f)) throw std::invalid_argument("attention: --hard-mix must be in [0, 1], got " + std::to_string(hard_mix));
  if (!(entropy_bonus >= 0.0f)) throw std::invalid_argument("attention: --entropy-bonus must be >= 0, got " + std::to_string(entropy_bonus));
  if (!(gumbel_temperature > 0.0f)) throw std::invalid_argument("attention: --gumbel-temperature must be > 0, got " + std::to_string(gumbel_temperature));
  if (!(sigma >= 0.0f)) throw std::invalid_argument("attention: --sigma must be >= 0 (0 = window / 2), got " + std::to_string(sigma));
  if (!(position_rate >= 0.0f && position_rate <= 1000.0f))
    throw std::invalid_argument("attention: --position-rate must be in (0, 1000] or auto, got " + std::to_string(position_rate));
  if (kind == MechanismKind::kLocalP && window < 1 && sigma == 0.0f)
    throw std::invalid_argument("attention: local-p needs --window >= 1 (sigma = window / 2), got " + std::to_string(window));
}

AttentionMechanism::AttentionMechanism(const AttentionConfig& config, int query_dim, int key_dim, Rng& rng)
    : config_(config), scorer_(config.score, query_dim, key_dim, config.attention_dim, rng, config.normalizer) {
  config.validate();
}

AttentionMemory AttentionMechanism::prepare(const Var& keys, const Var& values, const Tensor& mask, const Var&) const {
  AttentionMemory m;
  m.scorer = scorer_.prepare(keys, values, mask);
  const int64_t B = mask.size(0), S = mask.size(1);
  for (int64_t b = 0; b < B; ++b) {
    int len = 0;
    for (int64_t s = 0; s < S; ++s) len += mask.data()[b * S + s] != 0.0f;
    m.lengths.push_back(len);
  }
  return m;
}

void AttentionMechanism::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  scorer_.collect(prefix, out);
}

Var gaussian_around(const Var& p, int S, float sigma) {
  Tensor pos(Shape{1, 1, S});
  for (int s = 0; s < S; ++s) pos.data()[s] = static_cast<float>(s);
  Var d = sub(Var(pos), p);                                         // [B,1,S]: s - p_t
  return exp(scale(mul(d, d), -1.0f / (2.0f * sigma * sigma)));     // exp(-(s - p_t)^2 / (2 sigma^2))
}

namespace {

// Window [centre - D, centre + D] of each row, intersected with the padding mask: [B,S].
Tensor window_mask(const Tensor& padding, const std::vector<float>& centre, int D) {
  Tensor m = padding.clone();
  const int64_t B = padding.size(0), S = padding.size(1);
  for (int64_t b = 0; b < B; ++b) {
    const int lo = static_cast<int>(std::floor(centre[b])) - D, hi = static_cast<int>(std::ceil(centre[b])) + D;
    for (int64_t s = 0; s < S; ++s)
      if (s < lo || s > hi) m.data()[b * S + s] = 0.0f;
  }
  return m;
}

// soft: every source position, at every step.
class Soft final : public AttentionMechanism {
 public:
  Soft(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng) : AttentionMechanism(c, query_dim, key_dim, rng) {}
  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    ++st.step;
    return scorer_(query, m.scorer);
  }
};

// static: one distribution per sequence, computed from the encoder summary when the source is
// read and used unchanged at every output step (the decoder state plays no part).
class Static final : public AttentionMechanism {
 public:
  Static(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng) : AttentionMechanism(c, query_dim, key_dim, rng) {}
  AttentionMemory prepare(const Var& keys, const Var& values, const Tensor& mask, const Var& summary) const override {
    AttentionMemory m = AttentionMechanism::prepare(keys, values, mask, summary);
    AttentionResult r = scorer_(reshape(summary, Shape{summary.size(0), 1, summary.size(1)}), m.scorer);
    m.static_weights = r.weights;
    m.static_context = r.context;
    return m;
  }
  AttentionResult step(const Var&, const AttentionMemory& m, AttentionState& st) const override {
    ++st.step;
    return {m.static_context, m.static_weights};
  }
};

// local-m (Luong et al. 2015, sec. 3.2): p_t = t, attend only within [p_t - D, p_t + D]
// (clipped to the sentence). With a rate r, p_t = r t: sources longer or shorter than their
// outputs (r = source / output length, which `attend train --position-rate auto` measures).
class LocalM final : public AttentionMechanism {
 public:
  LocalM(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng) : AttentionMechanism(c, query_dim, key_dim, rng) {
    if (!(c.position_rate > 0.0f))
      throw std::invalid_argument("local-m: position_rate must be > 0, got " + std::to_string(c.position_rate) +
                                  " (auto is resolved from the training data by attend train)");
  }
  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0);
    std::vector<float> centre(B);
    for (int64_t b = 0; b < B; ++b)
      centre[b] = std::min(config_.position_rate * static_cast<float>(st.step), static_cast<float>(std::max(0, m.lengths[b] - 1)));
    ++st.step;
    return scorer_.weigh(scorer_.scores(query, m.scorer), m.scorer, window_mask(m.scorer.mask, centre, config_.window));
  }
};

// local-p (Luong et al. 2015, eqs. 9-10): p_t = (S_b - 1) sigmoid(v_p^T tanh(W_p h_t)) predicted
// from the decoder state (0-based positions of a source of length S_b), the weights of the window
// [p_t - D, p_t + D] multiplied by exp(-(s - p_t)^2 / (2 sigma^2)), sigma = D/2 (or --sigma). Gradients reach
// W_p and v_p through the Gaussian; the window's edges are not differentiable.
class LocalP final : public AttentionMechanism {
 public:
  LocalP(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng),
        wp_(query_dim, c.attention_dim, /*bias=*/false, rng),
        vp_(c.attention_dim, 1, /*bias=*/false, rng) {}

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    Tensor span(Shape{B, 1, 1});
    for (int64_t b = 0; b < B; ++b) span.data()[b] = static_cast<float>(std::max(0, m.lengths[b] - 1));
    Var p = mul(Var(span), sigmoid(vp_(tanh(wp_(query)))));  // [B,1,1]
    std::vector<float> centre(p.value().data(), p.value().data() + B);
    ++st.step;
    AttentionResult a = scorer_.weigh(scorer_.scores(query, m.scorer), m.scorer,
                                      window_mask(m.scorer.mask, centre, config_.window));
    const float sigma = config_.sigma > 0.0f ? config_.sigma : config_.window / 2.0f;
    Var w = mul(a.weights, gaussian_around(p, static_cast<int>(S), sigma));  // [B,1,S]
    return {bmm(w, m.scorer.values), w};
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    wp_.collect(prefix + "position.W.", out);
    vp_.collect(prefix + "position.v.", out);
  }

 private:
  Linear wp_, vp_;
};

// location (Chorowski et al. 2015, eqs. 8-9): e_t,s = va^T tanh(W s_t + V h_s + U f_t,s) with
// f_t = F * a_{t-1}, K filters of width R over source positions. At t = 0 there is no previous
// alignment and f = 0.
class Location final : public AttentionMechanism {
 public:
  Location(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng),
        filters_(parameter(Shape{c.location_filters, c.location_width})),
        u_(c.location_filters, c.attention_dim, /*bias=*/false, rng) {
    init::uniform(filters_.value(), 1.0f / std::sqrt(static_cast<float>(c.location_width)), rng);
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    Var sc = st.previous.defined()
                 ? scorer_.additive_scores_with(query, m.scorer, u_(position_conv(st.previous, filters_)))  // [B,1,S]
                 : scorer_.scores(query, m.scorer);
    AttentionResult a = scorer_.weigh(sc, m.scorer, m.scorer.mask);
    st.previous = reshape(a.weights, Shape{B, S});
    ++st.step;
    return a;
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    out.push_back({prefix + "location.filters", filters_});
    u_.collect(prefix + "location.U.", out);
  }

 private:
  Var filters_;  // F [K,R]
  Linear u_;     // U [K,A]
};

// coverage (Tu et al. 2016; in the form of See et al. 2017, eq. 11): c_t = sum_{tau<t} a_tau and
// e_t,s = va^T tanh(W s_t + V h_s + w_c c_t,s). With coverage_loss > 0 the state accumulates
// See et al.'s eq. 12, sum_s min(a_t,s, c_t,s), which the model adds to its training loss.
class Coverage final : public AttentionMechanism {
 public:
  Coverage(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng), wc_(parameter(Shape{c.attention_dim})) {
    init::uniform(wc_.value(), 1.0f / std::sqrt(static_cast<float>(c.attention_dim)), rng);
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    Var sc = st.coverage.defined()
                 ? scorer_.additive_scores_with(query, m.scorer, mul(reshape(st.coverage, Shape{B, S, 1}), wc_))
                 : scorer_.scores(query, m.scorer);
    AttentionResult a = scorer_.weigh(sc, m.scorer, m.scorer.mask);
    Var w = reshape(a.weights, Shape{B, S});
    if (st.coverage.defined() && config_.coverage_loss > 0.0f) {
      Var step_loss = sum(minimum(w, st.coverage));
      st.penalty = st.penalty.defined() ? add(st.penalty, step_loss) : step_loss;
    }
    st.coverage = st.coverage.defined() ? add(st.coverage, w) : w;
    ++st.step;
    return a;
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    out.push_back({prefix + "coverage.w", wc_});
  }

 private:
  Var wc_;  // w_c [A]
};

// monotonic (Raffel et al. 2017): at each output step the decoder scans the source from where it
// last attended and stops at position j with probability p_j = sigmoid(e_j + r), e the score and r
// a learned offset (initialised to -1). Training uses the expected alignment (eq. 9, see
// monotonic_alignment) and its context sum_j alpha_j h_j; inference moves a hard pointer: the
// first j at or after the previous position with p_j >= 0.5, or no attention (zero context)
// when there is none (sec. 2.2), in linear time overall.
class Monotonic final : public AttentionMechanism {
 public:
  Monotonic(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng), r_(parameter(Shape{1})) {
    r_.value().data()[0] = -1.0f;
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    Var e = add(reshape(scorer_.scores(query, m.scorer), Shape{B, S}), r_);
    if (!st.hard && st.sampler) {
      // Raffel et al. 2017, sec. 2.3: Gaussian noise N(0, 1) before the sigmoid in training
      // pushes the stop probabilities towards 0 or 1, so the expected alignment of training
      // matches the hard pointer (threshold 0.5) used at inference.
      Tensor noise(Shape{B, S});
      for (int64_t i = 0; i < noise.numel(); ++i) noise.data()[i] = st.sampler->normal();
      e = add(e, Var(noise));
    }
    Var p = mul(sigmoid(e), Var(m.scorer.mask));  // padding: never stop there
    ++st.step;
    if (st.hard) return hard_step(p, m, st);
    Var prev = st.previous;
    if (!prev.defined()) {  // before the first step all mass is at position 0
      Tensor start(Shape{B, S});
      for (int64_t b = 0; b < B; ++b) start.data()[b * S] = 1.0f;
      prev = Var(start);
    }
    Var alpha = monotonic_alignment(p, prev);  // [B,S]
    st.previous = alpha;
    Var w = reshape(alpha, Shape{B, 1, S});
    return {bmm(w, m.scorer.values), w};
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    out.push_back({prefix + "monotonic.r", r_});
  }

 private:
  AttentionResult hard_step(const Var& p, const AttentionMemory& m, AttentionState& st) const {
    const int64_t B = p.size(0), S = p.size(1);
    if (st.pointer.empty()) st.pointer.assign(B, 0);
    Tensor w(Shape{B, 1, S});
    for (int64_t b = 0; b < B; ++b) {
      int& at = st.pointer[b];
      int j = at;
      while (j < m.lengths[b] && p.value().data()[b * S + j] < 0.5f) ++j;
      if (j < m.lengths[b]) {
        w.data()[b * S + j] = 1.0f;
        at = j;
      } else {
        at = m.lengths[b];  // ran off the end: no attention from here on
      }
    }
    Var wv(w);
    return {bmm(wv, m.scorer.values), wv};
  }

  Var r_;  // the energy offset r
};

// forward (Zhang et al. 2018, eqs. 7-10): with y_t the soft weights of step t,
//   alpha^_t(n) = (alpha_{t-1}(n) + alpha_{t-1}(n-1)) y_t(n),  alpha_t = alpha^_t / sum alpha^_t,
// starting from all mass on position 0, so the alignment moves forward by at most one position
// per step. forward-ta (eqs. 11-13) weighs staying and moving with the transition agent's
// u_{t-1} = sigmoid(w_u [c_{t-1}; s_{t-1}] + b_u):
//   alpha^_t(n) = ((1 - u_{t-1}) alpha_{t-1}(n) + u_{t-1} alpha_{t-1}(n-1)) y_t(n)
// (u_0 = 0.5). Used the same way in training and decoding.
class Forward final : public AttentionMechanism {
 public:
  Forward(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng)
      : AttentionMechanism(c, query_dim, key_dim, rng), agent_(c.kind == MechanismKind::kForwardTA) {
    if (agent_) ta_ = Linear(key_dim + query_dim, 1, /*bias=*/true, rng);
  }

  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    const int64_t B = query.size(0), S = m.scorer.mask.size(1);
    // Zhang et al. 2018: alpha_t(n) ∝ ((1 - u) alpha_{t-1}(n) + u alpha_{t-1}(n-1)) y_t(n), fused
    // (u = 1/2 without the transition agent: the plain rule (alpha(n) + alpha(n-1)) y(n)).
    Var u;
    if (agent_) u = st.transition.defined() ? st.transition : Var(Tensor::full(Shape{B, 1}, 0.5f));
    Var alpha;
    if (config_.normalizer == Normalizer::kSoftmax) {
      // In the log domain (y_t = softmax of the scores): bounded gradients where the product
      // of probabilities vanishes, as when the output outruns the alignment.
      Var log_y = log_softmax(reshape(scorer_.scores(query, m.scorer), Shape{B, S}), m.scorer.mask);
      Var log_prev = st.log_alignment;
      if (!log_prev.defined()) {
        Tensor start = Tensor::full(Shape{B, S}, -std::numeric_limits<float>::infinity());
        for (int64_t b = 0; b < B; ++b) start.data()[b * S] = 0.0f;
        log_prev = Var(start);
      }
      st.log_alignment = forward_alignment_log(log_prev, log_y, u);
      alpha = exp(st.log_alignment);
    } else {  // sparsemax, entmax: exact zeros, so the probability form
      Var y = reshape(scorer_(query, m.scorer).weights, Shape{B, S});  // y_t
      Var prev = st.previous;
      if (!prev.defined()) {
        Tensor start(Shape{B, S});
        for (int64_t b = 0; b < B; ++b) start.data()[b * S] = 1.0f;
        prev = Var(start);
      }
      alpha = forward_alignment(prev, y, u);
    }
    Var w = reshape(alpha, Shape{B, 1, S});
    Var context = bmm(w, m.scorer.values);  // [B,1,Dv]
    if (agent_) {
      if (context.size(2) + query.size(2) != ta_.weight().size(0)) {
        throw std::invalid_argument("forward-ta: the transition agent reads [context; query] of " +
                                    std::to_string(ta_.weight().size(0)) + " values (values as wide as keys), got " +
                                    std::to_string(context.size(2) + query.size(2)));
      }
      Var in = concat({reshape(context, Shape{B, context.size(2)}), reshape(query, Shape{B, query.size(2)})}, 1);
      st.transition = sigmoid(ta_(in));  // u_t, used at the next step
    }
    st.previous = alpha;
    ++st.step;
    return {context, w};
  }

  void collect(const std::string& prefix, std::vector<NamedParameter>& out) const override {
    AttentionMechanism::collect(prefix, out);
    if (agent_) ta_.collect(prefix + "transition.", out);
  }

 private:
  bool agent_;
  Linear ta_;  // the transition agent: [c; s] -> 1
};

}  // namespace

// hard (Xu et al. 2015, sec. 4.1, "stochastic hard attention"): a_t is the soft distribution
// of the score; the context is the value at one position s~_t instead of the expectation.
//   inference (or no sampler): s~_t = argmax a_t.
//   REINFORCE: s~_t ~ Multinoulli(a_t); the state collects log a_t(s~_t) and H(a_t) so that the
//     model's loss can add -(R - b) log a_t(s~_t) - lambda_e H(a_t) (eq. 12); with probability
//     hard_mix a sentence uses the expected context a_t V instead (and is not in the sum).
//   Gumbel: y = softmax((log a_t + g) / tau), g ~ Gumbel(0, 1); the forward pass uses the one-hot
//     argmax of y, the backward pass the gradient of y (straight-through).
class Hard final : public AttentionMechanism {
 public:
  Hard(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng) : AttentionMechanism(c, query_dim, key_dim, rng) {}
  AttentionResult step(const Var& query, const AttentionMemory& m, AttentionState& st) const override {
    ++st.step;
    AttentionResult soft = scorer_(query, m.scorer);  // a_t [B,1,S]
    const Tensor& a = soft.weights.value();
    const int64_t B = a.size(0), S = a.size(2);
    auto one_hot = [&](const std::vector<int>& at) {
      Tensor h(Shape{B, 1, S});
      for (int64_t b = 0; b < B; ++b) h.data()[b * S + at[b]] = 1.0f;
      return h;
    };
    auto argmax = [&](const Tensor& w) {
      std::vector<int> at(B, 0);
      for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 1; s < S; ++s)
          if (w.data()[b * S + s] > w.data()[b * S + at[b]]) at[b] = static_cast<int>(s);
      return at;
    };
    const Var& values = m.scorer.values;
    if (st.hard || !st.sampler) {
      Var w(one_hot(argmax(a)));
      return {bmm(w, values), w};
    }
    Rng& rng = *st.sampler;
    if (config_.hard_estimator == HardEstimator::kGumbel) {
      Tensor g(Shape{B, 1, S});
      for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = -std::log(-std::log(std::max(rng.uniform(), 1e-20f)));
      // log a_t is -inf at padding; softmax's mask keeps those at exactly 0.
      Var logits = scale(add(log(add(soft.weights, Var(Tensor::full(Shape{1, 1, 1}, 1e-20f)))), Var(g)),
                         1.0f / config_.gumbel_temperature);
      Var y = softmax(reshape(logits, Shape{B, S}), m.scorer.mask);
      Tensor hard = one_hot(argmax(y.value()));
      Tensor delta = hard.clone();  // y_hard - y: the forward value becomes y_hard, the gradient stays y's
      for (int64_t i = 0; i < delta.numel(); ++i) delta.data()[i] -= y.value().data()[i];
      Var w = add(reshape(y, Shape{B, 1, S}), Var(delta));
      return {bmm(w, values), w};
    }
    // REINFORCE: per sentence, a sample (keep = 1) or the expectation (keep = 0).
    std::vector<int> at(B, 0);
    Tensor keep(Shape{B, 1, 1}), expect(Shape{B, 1, 1});
    for (int64_t b = 0; b < B; ++b) {
      const bool mix = config_.hard_mix > 0.0f && rng.uniform() < config_.hard_mix;
      float u = rng.uniform(), acc = 0.0f;
      int pick = -1;
      for (int64_t s = 0; s < S; ++s) {  // inverse CDF; the last position with weight catches rounding
        const float p = a.data()[b * S + s];
        if (p <= 0.0f) continue;
        pick = static_cast<int>(s);
        acc += p;
        if (u < acc) break;
      }
      at[b] = std::max(pick, 0);
      keep.data()[b] = mix ? 0.0f : 1.0f;
      expect.data()[b] = mix ? 1.0f : 0.0f;
    }
    const Tensor h = one_hot(at);
    Var w = add(mul(soft.weights, Var(expect)), mul(Var(h), Var(keep)));  // [B,1,S]
    // log a_t(s~) of the sampled rows, [B] (0 for rows that took the expectation).
    Var picked = bmm(soft.weights, reshape(Var(h), Shape{B, S, 1}));  // a_t(s~) [B,1,1]
    Var log_p = mul(reshape(log(picked), Shape{B}), Var(keep.view(Shape{B})));
    st.sampled_log_prob = st.sampled_log_prob.defined() ? add(st.sampled_log_prob, log_p) : log_p;
    // H(a_t) = -sum_s a log a over every row (0 log 0 = 0: a tiny floor inside the log).
    Var ent = scale(sum(mul(soft.weights, log(add(soft.weights, Var(Tensor::full(Shape{1, 1, 1}, 1e-12f)))))), -1.0f);
    st.entropy = st.entropy.defined() ? add(st.entropy, ent) : ent;
    return {bmm(w, values), w};
  }
};

std::shared_ptr<AttentionMechanism> make_attention(const AttentionConfig& c, int query_dim, int key_dim, Rng& rng) {
  switch (c.kind) {
    case MechanismKind::kSoft: return std::make_shared<Soft>(c, query_dim, key_dim, rng);
    case MechanismKind::kStatic: return std::make_shared<Static>(c, query_dim, key_dim, rng);
    case MechanismKind::kLocalM: return std::make_shared<LocalM>(c, query_dim, key_dim, rng);
    case MechanismKind::kLocalP: return std::make_shared<LocalP>(c, query_dim, key_dim, rng);
    case MechanismKind::kLocation: return std::make_shared<Location>(c, query_dim, key_dim, rng);
    case MechanismKind::kCoverage: return std::make_shared<Coverage>(c, query_dim, key_dim, rng);
    case MechanismKind::kMonotonic: return std::make_shared<Monotonic>(c, query_dim, key_dim, rng);
    case MechanismKind::kForward:
    case MechanismKind::kForwardTA: return std::make_shared<Forward>(c, query_dim, key_dim, rng);
    case MechanismKind::kHard: return std::make_shared<Hard>(c, query_dim, key_dim, rng);
  }
  throw std::invalid_argument("make_attention: unknown mechanism");
}

}  // namespace attend
