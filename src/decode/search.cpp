#include "attend/decode/search.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "attend/ops/shape.h"
#include "../kernels/softmax.h"

namespace attend {

namespace {

// The window constraint of the options, or nullptr.
const Seq2Seq::WindowConstraint* window_of(const DecodeOptions& opt, Seq2Seq::WindowConstraint& w) {
  if (opt.window_back < 0 && opt.window_forward < 0) return nullptr;
  w.back = opt.window_back < 0 ? 1 << 20 : opt.window_back;
  w.forward = opt.window_forward < 0 ? 1 << 20 : opt.window_forward;
  return &w;
}

int max_steps(const Batch& batch, const DecodeOptions& opt) { return opt.max_length > 0 ? opt.max_length : 2 * batch.S + 10; }

std::vector<float> row(const Tensor& t, int r, int n) {
  const float* p = t.data() + int64_t(r) * t.size(1);
  return {p, p + n};
}

std::vector<Hypothesis> greedy(const Seq2Seq& model, const Batch& batch, const DecodeOptions& opt) {
  const int B = batch.B;
  Seq2Seq::Encoded enc = model.encode(batch.src, batch.src_lengths, batch.S, nullptr);
  Seq2Seq::DecoderState state = model.initial_state(enc);
  state.attn.hard = true;
  Seq2Seq::WindowConstraint wc;
  const Seq2Seq::WindowConstraint* window = window_of(opt, wc);
  std::vector<Hypothesis> out(B);
  std::vector<int> prev(B, Vocab::kBos);
  std::vector<bool> done(B, false);
  int remaining = B;
  for (int t = 0; t < max_steps(batch, opt) && remaining > 0; ++t) {
    Seq2Seq::Step s = model.step(prev, state, enc, nullptr, window);
    const int V = s.logits.size(1);
    Tensor logp = Tensor::empty(s.logits.shape());
    kernels::softmax_rows(s.logits.value().data(), nullptr, B, 1, V, logp.data(), /*log_output=*/true);
    for (int b = 0; b < B; ++b) {
      if (done[b]) continue;
      const float* lp = logp.data() + int64_t(b) * V;
      const int best = static_cast<int>(std::max_element(lp + Vocab::kEos, lp + V) - lp);  // never <pad>/<unk>/<s>
      out[b].score += lp[best];
      out[b].attention.push_back(row(s.weights.value(), b, batch.src_lengths[b]));
      if (best == Vocab::kEos) {
        done[b] = true;
        --remaining;
      } else {
        out[b].tokens.push_back(best);
      }
      prev[b] = best;
    }
    state = s.state;
  }
  return out;
}

Seq2Seq::DecoderState gather(const Seq2Seq::DecoderState& s, const std::vector<int>& rows) {
  Seq2Seq::DecoderState g;
  g.attn.step = s.attn.step;  // the same step for every row
  g.attn.hard = s.attn.hard;
  for (int r : rows) {
    if (!s.attn.pointer.empty()) g.attn.pointer.push_back(s.attn.pointer[r]);
    if (!s.last_attended.empty()) g.last_attended.push_back(s.last_attended[r]);
  }
  if (s.attn.previous.defined()) g.attn.previous = Var(gather_rows(s.attn.previous.value(), rows));
  if (s.attn.coverage.defined()) g.attn.coverage = Var(gather_rows(s.attn.coverage.value(), rows));
  if (s.attn.transition.defined()) g.attn.transition = Var(gather_rows(s.attn.transition.value(), rows));
  g.rnn.h = Var(gather_rows(s.rnn.h.value(), rows));
  if (s.rnn.c.defined()) g.rnn.c = Var(gather_rows(s.rnn.c.value(), rows));
  if (s.feed.defined()) g.feed = Var(gather_rows(s.feed.value(), rows));
  return g;
}

std::vector<Hypothesis> beam_search(const Seq2Seq& model, const Batch& batch, const DecodeOptions& opt) {
  const int B = batch.B, K = opt.beam;
  Seq2Seq::Encoded enc = model.encode(batch.src, batch.src_lengths, batch.S, nullptr);
  // Each sentence's encoding repeated K times: rows b*K .. b*K+K-1.
  std::vector<int> expand(B * K);
  for (int i = 0; i < B * K; ++i) expand[i] = i / K;
  Seq2Seq::Encoded big = enc;
  big.B = B * K;
  big.memory.scorer.keys = Var(gather_rows(enc.memory.scorer.keys.value(), expand));
  big.memory.scorer.values = Var(gather_rows(enc.memory.scorer.values.value(), expand));
  big.memory.scorer.mask = gather_rows(enc.memory.scorer.mask, expand);
  big.memory.lengths.clear();
  for (int r : expand) big.memory.lengths.push_back(enc.memory.lengths[r]);
  if (enc.memory.static_weights.defined()) {
    big.memory.static_weights = Var(gather_rows(enc.memory.static_weights.value(), expand));
    big.memory.static_context = Var(gather_rows(enc.memory.static_context.value(), expand));
  }
  Seq2Seq::DecoderState state = gather(model.initial_state(enc), expand);
  state.attn.hard = true;
  Seq2Seq::WindowConstraint wc;
  const Seq2Seq::WindowConstraint* window = window_of(opt, wc);

  struct Live {
    std::vector<int> tokens;
    std::vector<std::vector<float>> attention;
    float logp = 0.0f;
  };
  std::vector<std::vector<Live>> live(B, std::vector<Live>(K));
  std::vector<std::vector<Hypothesis>> finished(B);
  std::vector<bool> closed(B, false);
  auto normalised = [&](float logp, size_t len) {
    return opt.length_penalty > 0.0f ? logp / std::pow(static_cast<float>(len), opt.length_penalty) : logp;
  };
  std::vector<int> prev(B * K, Vocab::kBos);
  const int steps = max_steps(batch, opt);
  for (int t = 0; t < steps; ++t) {
    Seq2Seq::Step s = model.step(prev, state, big, nullptr, window);
    const int V = s.logits.size(1);
    Tensor logp = Tensor::empty(s.logits.shape());
    kernels::softmax_rows(s.logits.value().data(), nullptr, B * K, 1, V, logp.data(), /*log_output=*/true);
    std::vector<int> parents(B * K, 0);
    bool any_open = false;
    for (int b = 0; b < B; ++b) {
      if (closed[b]) {
        for (int k = 0; k < K; ++k) parents[b * K + k] = b * K;  // keep the rows busy; results ignored
        continue;
      }
      // Candidates (score, row, token); at t = 0 all K rows are the same, so only row 0 expands.
      std::vector<std::tuple<float, int, int>> cand;
      for (int k = 0; k < (t == 0 ? 1 : K); ++k) {
        const int r = b * K + k;
        const float* lp = logp.data() + int64_t(r) * V;
        for (int v = Vocab::kEos; v < V; ++v) cand.emplace_back(live[b][k].logp + lp[v], k, v);
      }
      const size_t keep = std::min(cand.size(), size_t(2 * K));
      std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(),
                        [](const auto& x, const auto& y) { return std::get<0>(x) > std::get<0>(y); });
      std::vector<Live> next;
      for (size_t i = 0; i < keep && static_cast<int>(next.size()) < K; ++i) {
        const auto [score, k, v] = cand[i];
        Live h = live[b][k];
        h.attention.push_back(row(s.weights.value(), b * K + k, batch.src_lengths[b]));
        h.logp = score;
        if (v == Vocab::kEos) {  // keep the K best finished hypotheses
          Hypothesis done{h.tokens, h.attention, normalised(score, h.tokens.size() + 1)};
          auto& fin = finished[b];
          if (static_cast<int>(fin.size()) < K) {
            fin.push_back(std::move(done));
          } else {
            auto worst = std::min_element(fin.begin(), fin.end(), [](const auto& x, const auto& y) { return x.score < y.score; });
            if (worst->score < done.score) *worst = std::move(done);
          }
          continue;
        }
        h.tokens.push_back(v);
        parents[b * K + static_cast<int>(next.size())] = b * K + k;
        prev[b * K + static_cast<int>(next.size())] = v;
        next.push_back(std::move(h));
      }
      while (static_cast<int>(next.size()) < K) {  // (tiny vocabularies) pad with a dead copy
        Live dead = next.empty() ? live[b][0] : next.back();
        dead.logp = -INFINITY;
        parents[b * K + static_cast<int>(next.size())] = b * K;
        prev[b * K + static_cast<int>(next.size())] = Vocab::kEos;
        next.push_back(std::move(dead));
      }
      live[b] = std::move(next);
      // Done when K hypotheses have finished and none of them is beaten by the best live one
      // at its current length (the usual heuristic: live scores only fall as tokens are added).
      if (static_cast<int>(finished[b].size()) >= K) {
        float best_finished = -INFINITY;
        for (const auto& f : finished[b]) best_finished = std::max(best_finished, f.score);
        if (normalised(live[b][0].logp, live[b][0].tokens.size() + 1) <= best_finished) closed[b] = true;
      }
      any_open = any_open || !closed[b];
    }
    if (!any_open) break;
    state = gather(s.state, parents);
  }
  std::vector<Hypothesis> out(B);
  for (int b = 0; b < B; ++b) {
    if (finished[b].empty()) {  // ran out of steps: take the best live hypothesis
      const Live& h = live[b][0];
      finished[b].push_back({h.tokens, h.attention, normalised(h.logp, std::max<size_t>(h.tokens.size(), 1))});
    }
    out[b] = *std::max_element(finished[b].begin(), finished[b].end(),
                               [](const Hypothesis& x, const Hypothesis& y) { return x.score < y.score; });
  }
  return out;
}

}  // namespace

std::vector<Hypothesis> decode(const Seq2Seq& model, const Batch& batch, const DecodeOptions& opt) {
  if (opt.beam < 1) throw std::invalid_argument("decode: beam must be >= 1, got " + std::to_string(opt.beam));
  NoGradScope no_grad;
  return opt.beam == 1 ? greedy(model, batch, opt) : beam_search(model, batch, opt);
}

}  // namespace attend
