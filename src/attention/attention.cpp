#include "attend/attention/attention.h"

#include <cmath>
#include <stdexcept>

#include "attend/nn/init.h"
#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/matmul.h"
#include "attend/ops/shape.h"
#include "attend/ops/softmax.h"

namespace attend {

ScoreKind parse_score(const std::string& name) {
  if (name == "dot") return ScoreKind::kDot;
  if (name == "scaled-dot") return ScoreKind::kScaledDot;
  if (name == "general") return ScoreKind::kGeneral;
  if (name == "additive" || name == "concat") return ScoreKind::kAdditive;
  throw std::invalid_argument("unknown attention score '" + name + "' (expected dot, scaled-dot, general or additive)");
}

std::string to_string(ScoreKind kind) {
  switch (kind) {
    case ScoreKind::kDot:
      return "dot";
    case ScoreKind::kScaledDot:
      return "scaled-dot";
    case ScoreKind::kGeneral:
      return "general";
    case ScoreKind::kAdditive:
      return "additive";
  }
  return "?";
}

namespace {

void check_params(ScoreKind score, int Dq, int Dk, const ScoreParams& p) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument("attention (" + to_string(score) + "): " + what + " for Dq=" + std::to_string(Dq) +
                                ", Dk=" + std::to_string(Dk));
  };
  switch (score) {
    case ScoreKind::kDot:
    case ScoreKind::kScaledDot:
      if (Dq != Dk) fail("query and key sizes must be equal");
      break;
    case ScoreKind::kGeneral:
      if (!p.W.defined() || p.W.ndim() != 2 || p.W.size(0) != Dq || p.W.size(1) != Dk)
        fail("W must be [Dq, Dk], got " + (p.W.defined() ? p.W.shape().str() : std::string("none")));
      break;
    case ScoreKind::kAdditive:
      if (!p.Wq.defined() || !p.Wk.defined() || !p.va.defined() || p.Wq.ndim() != 2 || p.Wk.ndim() != 2 ||
          p.va.ndim() != 1 || p.Wq.size(0) != Dq || p.Wk.size(0) != Dk || p.Wq.size(1) != p.va.size(0) ||
          p.Wk.size(1) != p.va.size(0))
        fail("Wq [Dq,A], Wk [Dk,A], va [A] do not fit");
      break;
  }
}

// keys [B,S,Dk] -> the form the score consumes (once per source).
Var prepare_keys(ScoreKind score, const Var& keys, const ScoreParams& p) {
  const int64_t B = keys.size(0), S = keys.size(1), Dk = keys.size(2);
  switch (score) {
    case ScoreKind::kDot:
    case ScoreKind::kScaledDot:
      return keys;
    case ScoreKind::kGeneral: {  // (W k_s) for every s: keys W^T -> [B,S,Dq]
      Var kw = matmul(reshape(keys, Shape{B * S, Dk}), p.W, false, /*trans_b=*/true);
      return reshape(kw, Shape{B, S, p.W.size(0)});
    }
    case ScoreKind::kAdditive:
      return linear(keys, p.Wk, Var());  // [B,S,A]
  }
  return keys;
}

// query [B,T,Dq], prepared keys [B,S,X] -> scores [B,T,S]
Var scores(ScoreKind score, const Var& query, const Var& pkeys, const ScoreParams& p) {
  switch (score) {
    case ScoreKind::kDot:
    case ScoreKind::kGeneral:
      return bmm(query, pkeys, false, /*trans_b=*/true);
    case ScoreKind::kScaledDot:
      return scale(bmm(query, pkeys, false, /*trans_b=*/true), 1.0f / std::sqrt(static_cast<float>(pkeys.size(2))));
    case ScoreKind::kAdditive:
      return additive_scores(linear(query, p.Wq, Var()), pkeys, p.va);
  }
  return Var();
}

AttentionResult weigh_values(const Var& sc, const Var& values, const Tensor& mask, Normalizer normalizer) {
  Var w = normalize(sc, mask, normalizer);  // [B,T,S]
  return {bmm(w, values), w};               // [B,T,Dv]
}

}  // namespace

void check_attention_inputs(const Var& query, const Var& keys, const Var& values, const Tensor& mask) {
  const bool ok = query.ndim() == 3 && keys.ndim() == 3 && values.ndim() == 3 && query.size(0) == keys.size(0) &&
                  keys.size(0) == values.size(0) && keys.size(1) == values.size(1);
  if (!ok) {
    throw std::invalid_argument("attention: query " + query.shape().str() + " ([B,T,Dq]), keys " + keys.shape().str() +
                                " ([B,S,Dk]), values " + values.shape().str() + " ([B,S,Dv]) do not fit");
  }
  if (mask.defined() && (mask.ndim() != 2 || mask.size(0) != keys.size(0) || mask.size(1) != keys.size(1))) {
    throw std::invalid_argument("attention: mask has shape " + mask.shape().str() + ", expected [B, S] = [" +
                                std::to_string(keys.size(0)) + ", " + std::to_string(keys.size(1)) + "]");
  }
  // Zero sizes: B = 0 or T = 0 is an empty result (see attention()); the others have no meaning.
  auto empty = [&](const char* what, int64_t n) {
    if (n == 0)
      throw std::invalid_argument(std::string("attention: ") + what + " is 0 (query " + query.shape().str() +
                                  ", keys " + keys.shape().str() + ", values " + values.shape().str() + ")");
  };
  empty("S (source positions: nothing to attend to)", keys.size(1));
  empty("Dq (the query's feature size)", query.size(2));
  empty("Dk (the keys' feature size)", keys.size(2));
  empty("Dv (the values' feature size)", values.size(2));
}

AttentionResult attention(const Var& query, const Var& keys, const Var& values, const Tensor& mask, ScoreKind score,
                          const ScoreParams& params, Normalizer normalizer) {
  check_attention_inputs(query, keys, values, mask);
  check_params(score, query.size(2), keys.size(2), params);
  const int64_t B = query.size(0), T = query.size(1);
  if (B == 0 || T == 0)  // no queries: an empty context and empty weights
    return {Var(Tensor(Shape{B, T, values.size(2)})), Var(Tensor(Shape{B, T, keys.size(1)}))};
  return weigh_values(scores(score, query, prepare_keys(score, keys, params), params), values, mask, normalizer);
}

SoftAttention::SoftAttention(ScoreKind score, int query_dim, int key_dim, int attention_dim, Rng& rng,
                             Normalizer normalizer)
    : score_(score), normalizer_(normalizer), query_dim_(query_dim), key_dim_(key_dim) {
  if (score == ScoreKind::kGeneral) {
    params_.W = parameter(Shape{query_dim, key_dim});
    init::glorot_uniform(params_.W.value(), rng);
  } else if (score == ScoreKind::kAdditive) {
    params_.Wq = parameter(Shape{query_dim, attention_dim});
    params_.Wk = parameter(Shape{key_dim, attention_dim});
    params_.va = parameter(Shape{attention_dim});
    init::glorot_uniform(params_.Wq.value(), rng);
    init::glorot_uniform(params_.Wk.value(), rng);
    init::uniform(params_.va.value(), 1.0f / std::sqrt(static_cast<float>(attention_dim)), rng);
  }
  check_params(score, query_dim, key_dim, params_);
}

SoftAttention::Memory SoftAttention::prepare(const Var& keys, const Var& values, const Tensor& mask) const {
  if (keys.ndim() != 3 || keys.size(2) != key_dim_) {
    throw std::invalid_argument("SoftAttention::prepare: keys " + keys.shape().str() + " are not [B,S," +
                                std::to_string(key_dim_) + "]");
  }
  return {prepare_keys(score_, keys, params_), values, mask};
}

AttentionResult SoftAttention::operator()(const Var& query, const Memory& memory) const {
  return weigh(scores(query, memory), memory, memory.mask);
}

Var SoftAttention::scores(const Var& query, const Memory& memory) const {
  if (query.ndim() != 3 || query.size(2) != query_dim_ || query.size(0) != memory.keys.size(0)) {
    throw std::invalid_argument("SoftAttention: query " + query.shape().str() + " is not [B,T," +
                                std::to_string(query_dim_) + "] for keys " + memory.keys.shape().str());
  }
  return attend::scores(score_, query, memory.keys, params_);
}

Var SoftAttention::additive_scores_with(const Var& query, const Memory& memory, const Var& extra) const {
  if (score_ != ScoreKind::kAdditive) {
    throw std::invalid_argument("this attention mechanism needs the additive score, got " + to_string(score_));
  }
  return additive_scores(linear(query, params_.Wq, Var()), add(memory.keys, extra), params_.va);
}

AttentionResult SoftAttention::weigh(const Var& sc, const Memory& memory, const Tensor& mask) const {
  return weigh_values(sc, memory.values, mask, normalizer_);
}

void SoftAttention::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  if (params_.W.defined()) out.push_back({prefix + "W", params_.W});
  if (params_.Wq.defined()) {
    out.push_back({prefix + "Wq", params_.Wq});
    out.push_back({prefix + "Wk", params_.Wk});
    out.push_back({prefix + "va", params_.va});
  }
}

}  // namespace attend
