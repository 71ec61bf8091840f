#include "attend/attention/mechanism.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "attend/attention/registry.h"
#include "attend/ops/attention_scores.h"
#include "attend/ops/elementwise.h"
#include "attend/ops/shape.h"
#include "../io/json_field.h"

namespace attend {

// ---- the config ---------------------------------------------------------------------------

namespace {
std::string o_list(const MechanismInfo& info) {
  if (info.options.empty()) return "it has no options";
  std::string s = "its options are";
  for (const auto& o : info.options) s += " " + o.key;
  return s;
}
}  // namespace

std::string AttentionConfig::canonical_mechanism() const { return find_mechanism(mechanism).name; }

double AttentionConfig::option(const std::string& key) const {
  const MechanismInfo& info = find_mechanism(mechanism);
  const MechanismOption* o = info.option(key);
  if (!o) throw std::invalid_argument("attention: " + info.name + " has no option '" + key + "'");
  const auto it = options.find(key);
  return it == options.end() ? o->default_value : it->second;
}

void AttentionConfig::validate() const {
  const MechanismInfo& info = find_mechanism(mechanism);
  if (attention_dim < 1)
    throw std::invalid_argument("attention: attention_dim must be >= 1, got " + std::to_string(attention_dim));
  if (info.additive_only && score != ScoreKind::kAdditive)
    throw std::invalid_argument("attention: " + info.name + " needs the additive score; got --score " +
                                to_string(score));
  for (const auto& [key, value] : options) {
    const MechanismOption* o = info.option(key);
    if (!o)
      throw std::invalid_argument("attention: " + info.name + " has no option '" + key + "' (" + o_list(info) + ")");
    if (!o->valid(value))
      throw std::invalid_argument("attention: " + o->flag() + " must be in " + o->range() + ", got " +
                                  o->format(value));
  }
  if (info.validate) info.validate(*this);
}

void to_json(nlohmann::json& j, const AttentionConfig& c) {
  const MechanismInfo& info = find_mechanism(c.mechanism);
  j = {{"attention", info.name},
       {"score", to_string(c.score)},
       {"normalizer", to_string(c.normalizer)},
       {"attention_dim", c.attention_dim}};
  for (const MechanismOption& o : info.options) {
    const double v = c.option(o.key);
    if (o.type == MechanismOption::Type::kChoice)
      j[o.key] = o.choices.at(static_cast<size_t>(v));
    else if (o.type == MechanismOption::Type::kInt)
      j[o.key] = static_cast<int64_t>(v);
    else
      j[o.key] = json_float(static_cast<float>(v));
  }
}

// Written for every mechanism before options belonged to their mechanisms: read and ignored.
constexpr const char* kLegacyKeys[] = {"window", "coverage_loss"};

std::vector<std::string> attention_json_keys(const std::string& mechanism) {
  std::vector<std::string> keys = {"attention", "score", "normalizer", "attention_dim"};
  for (const char* k : kLegacyKeys) keys.push_back(k);
  for (const auto& o : find_mechanism(mechanism).options) keys.push_back(o.key);
  return keys;
}

void from_json(const nlohmann::json& j, AttentionConfig& c) {
  const char* w = "model config";
  c.mechanism = find_mechanism(json_field<std::string>(j, "attention", w, default_mechanism())).name;
  c.score = parse_score(json_field<std::string>(j, "score", w));
  c.normalizer = parse_normalizer(json_field<std::string>(j, "normalizer", w, std::string("softmax")));
  c.attention_dim = json_field<int>(j, "attention_dim", w);
  c.options.clear();
  for (const MechanismOption& o : find_mechanism(c.mechanism).options) {
    const auto it = j.find(o.key);
    if (it == j.end()) continue;  // older files: the default
    const std::string origin = std::string(w) + ": '" + o.key + "'";
    if (o.type == MechanismOption::Type::kChoice) {
      if (!it->is_string())
        throw std::invalid_argument(origin + " must be one of " + o.range() + ", got " + it->dump());
      c.options[o.key] = o.parse(it->get<std::string>(), origin);
    } else {
      if (!it->is_number()) throw std::invalid_argument(origin + " has the wrong type: " + it->dump().substr(0, 60));
      c.options[o.key] = o.parse(it->dump(), origin);
    }
  }
  c.validate();
}

// ---- the state ------------------------------------------------------------------------------

Var& AttentionState::row(size_t slot) {
  if (rows.size() <= slot) rows.resize(slot + 1);
  return rows[slot];
}

const Var& AttentionState::row(size_t slot) const {
  static const Var kNone;
  return slot < rows.size() ? rows[slot] : kNone;
}

std::vector<int>& AttentionState::ints(size_t slot) {
  if (row_ints.size() <= slot) row_ints.resize(slot + 1);
  return row_ints[slot];
}

Var& AttentionState::sum(size_t slot) {
  if (sums.size() <= slot) sums.resize(slot + 1);
  return sums[slot];
}

const Var& AttentionState::sum(size_t slot) const {
  static const Var kNone;
  return slot < sums.size() ? sums[slot] : kNone;
}

AttentionState AttentionState::gather(const std::vector<int>& which) const {
  AttentionState g;
  g.step = step, g.inference = inference, g.sampler = sampler;  // the same step for every row
  g.rows.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i)
    if (rows[i].defined()) g.rows[i] = Var(gather_rows(rows[i].value(), which));
  g.row_ints.resize(row_ints.size());
  for (size_t i = 0; i < row_ints.size(); ++i)
    if (!row_ints[i].empty())
      for (int r : which) g.row_ints[i].push_back(row_ints[i].at(static_cast<size_t>(r)));
  return g;  // sums are training's: a search has none
}

AttentionMemory AttentionMemory::gather(const std::vector<int>& which) const {
  AttentionMemory m;
  m.scorer.keys = Var(gather_rows(scorer.keys.value(), which));
  m.scorer.values = Var(gather_rows(scorer.values.value(), which));
  m.scorer.mask = gather_rows(scorer.mask, which);
  for (int r : which) m.lengths.push_back(lengths.at(static_cast<size_t>(r)));
  if (static_weights.defined()) m.static_weights = Var(gather_rows(static_weights.value(), which));
  if (static_context.defined()) m.static_context = Var(gather_rows(static_context.value(), which));
  for (const Var& v : rows) m.rows.push_back(v.defined() ? Var(gather_rows(v.value(), which)) : Var());
  return m;
}

// ---- the base class ---------------------------------------------------------------------------

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

Var AttentionMechanism::extra_loss(const AttentionState&, const std::vector<double>&, float) const { return Var(); }

void AttentionMechanism::collect(const std::string& prefix, std::vector<NamedParameter>& out) const {
  scorer_.collect(prefix, out);
}

std::shared_ptr<AttentionMechanism> make_attention(const AttentionConfig& config, int query_dim, int key_dim,
                                                   Rng& rng) {
  config.validate();
  return find_mechanism(config.mechanism).make(config, query_dim, key_dim, rng);
}

Var gaussian_around(const Var& p, int S, float sigma) {
  Tensor pos(Shape{1, 1, S});
  for (int s = 0; s < S; ++s) pos.data()[s] = static_cast<float>(s);
  Var d = sub(Var(pos), p);                                      // [B,1,S]: s - p_t
  return exp(scale(mul(d, d), -1.0f / (2.0f * sigma * sigma)));  // exp(-(s - p_t)^2 / (2 sigma^2))
}

Var monotonic_stop_probabilities(const Var& energies, const Var& r, const Tensor& mask, const AttentionState& st) {
  Var e = add(energies, r);
  if (!st.inference && st.sampler) {
    Tensor noise(energies.shape());
    for (int64_t i = 0; i < noise.numel(); ++i) noise.data()[i] = st.sampler->normal();
    e = add(e, Var(noise));
  }
  return mul(sigmoid(e), Var(mask));  // padding: never stop there
}

Var monotonic_expected_alignment(const Var& p, const Var& previous) {
  if (previous.defined()) return monotonic_alignment(p, previous);
  const int64_t B = p.size(0), S = p.size(1);
  Tensor start(Shape{B, S});
  for (int64_t b = 0; b < B; ++b) start.data()[b * S] = 1.0f;
  return monotonic_alignment(p, Var(start));
}

std::vector<int> advance_monotonic_pointers(const Tensor& p, const std::vector<int>& lengths,
                                            std::vector<int>& pointer) {
  const int64_t B = p.size(0), S = p.size(1);
  if (pointer.empty()) pointer.assign(B, 0);
  std::vector<int> end(B, -1);
  for (int64_t b = 0; b < B; ++b) {
    int j = pointer[b];
    while (j < lengths[b] && p.data()[b * S + j] < 0.5f) ++j;
    pointer[b] = j;  // lengths[b] once it has run off the end: no attention from here on
    if (j < lengths[b]) end[b] = j;
  }
  return end;
}

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

}  // namespace attend
