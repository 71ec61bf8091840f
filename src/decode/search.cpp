#include "attend/decode/search.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <stdexcept>
#include <tuple>

#include "attend/decode/ensemble.h"
#include "kernels/softmax.h"

namespace attend {

namespace {

// The steps a batch needs: its longest source's limit, within what the decoder can take.
int max_steps(const Batch& batch, const DecodeOptions& opt, const StepDecoder& dec) {
  int most = 0;
  for (int b = 0; b < batch.B; ++b) most = std::max(most, step_limit(batch.src_lengths[b], opt));
  return std::min(most, dec.max_steps());
}

// Row `r` of a step's weights [N,G,S], cut to the source's length n, then its K trace values:
// G * n + K values (the searches carry both as one row, so that beams reorder them together).
std::vector<float> weights_row(const NextTokenScores& s, int r, int n) {
  const Tensor& w = s.weights;
  const int64_t G = w.size(1), S = w.size(2), K = s.trace.defined() ? s.trace.size(1) : 0;
  std::vector<float> out(size_t(G) * n + K);
  for (int64_t g = 0; g < G; ++g) {
    const float* p = w.data() + (int64_t(r) * G + g) * S;
    std::copy(p, p + n, out.begin() + g * n);
  }
  if (K) std::copy(s.trace.data() + int64_t(r) * K, s.trace.data() + int64_t(r + 1) * K, out.end() - K);
  return out;
}

// The searches drop finished sentences from the decoder once they are an eighth of its rows:
// each drop copies the remaining rows' state and memory, so not at every finished sentence.
bool worth_dropping(int finished_rows, int rows) { return finished_rows > 0 && finished_rows * 8 >= rows; }

// Log-probabilities [N,V] from a step's logits.
Tensor log_probs(const Tensor& logits) {
  Tensor lp = Tensor::empty(logits.shape());
  kernels::softmax_rows(logits.data(), nullptr, logits.size(0), 1, logits.size(1), lp.data(), /*log_output=*/true);
  return lp;
}

// Rows of G * n weights (and the trace) per step -> the hypothesis' attention (the mean of the
// G maps), for G > 1 every map, and the trace.
void set_attention(Hypothesis& h, const std::vector<std::vector<float>>& rows, int G, int n) {
  h.attention.assign(rows.size(), std::vector<float>(n, 0.0f));
  if (G > 1) h.maps.assign(G, std::vector<std::vector<float>>(rows.size(), std::vector<float>(n)));
  h.trace.clear();
  for (const auto& row : rows)
    if (row.size() > size_t(G) * n) h.trace.emplace_back(row.begin() + size_t(G) * n, row.end());
  for (size_t t = 0; t < rows.size(); ++t)
    for (int g = 0; g < G; ++g)
      for (int s = 0; s < n; ++s) {
        const float w = rows[t][size_t(g) * n + s];
        h.attention[t][s] += w / G;
        if (G > 1) h.maps[g][t][s] = w;
      }
}

std::vector<Hypothesis> greedy(StepDecoder& dec, const Batch& batch, const DecodeOptions& opt) {
  const int B = batch.B;
  std::vector<Hypothesis> out(B);
  std::vector<std::vector<std::vector<float>>> rows(B);
  std::vector<int> alive(B);  // the sentence of each of the decoder's rows
  for (int b = 0; b < B; ++b) alive[b] = b;
  std::vector<int> prev(B, Vocab::kBos);
  std::vector<bool> done(B, false);
  int remaining = B, finished_rows = 0, G = 1;
  for (int t = 0; t < max_steps(batch, opt, dec) && remaining > 0; ++t) {
    const NextTokenScores s = dec.step(prev);
    G = static_cast<int>(s.weights.size(1));
    const int V = static_cast<int>(s.logits.size(1));
    const Tensor logp = log_probs(s.logits);
    for (size_t r = 0; r < alive.size(); ++r) {
      const int b = alive[r];
      if (done[b]) continue;
      const float* lp = logp.data() + int64_t(r) * V;
      const int best = static_cast<int>(std::max_element(lp + Vocab::kEos, lp + V) - lp);  // never <pad>/<unk>/<s>
      out[b].score += lp[best];
      out[b].log_prob = out[b].score;
      rows[b].push_back(weights_row(s, static_cast<int>(r), batch.src_lengths[b]));
      if (best != Vocab::kEos) out[b].tokens.push_back(best);
      // </s>, or cut at this source's length limit
      if (best == Vocab::kEos || static_cast<int>(out[b].tokens.size()) >= step_limit(batch.src_lengths[b], opt)) {
        done[b] = true;
        --remaining;
        ++finished_rows;
      }
      prev[r] = best;
    }
    if (remaining > 0 && worth_dropping(finished_rows, static_cast<int>(alive.size()))) {
      std::vector<int> keep;
      for (size_t r = 0; r < alive.size(); ++r)
        if (!done[alive[r]]) keep.push_back(static_cast<int>(r));
      if (dec.keep(keep)) {
        std::vector<int> next_alive, next_prev;
        for (int r : keep) next_alive.push_back(alive[r]), next_prev.push_back(prev[r]);
        alive = std::move(next_alive), prev = std::move(next_prev);
        finished_rows = 0;
      }
    }
  }
  for (int b = 0; b < B; ++b) set_attention(out[b], rows[b], G, batch.src_lengths[b]);
  return out;
}

// Beam search over K rows per source (row b * K + k of the decoder for source b, until finished
// sources are dropped): at every step each open source keeps its K best continuations, and its
// finished hypotheses (those that chose </s>) compete by length-normalised score.
class BeamSearch {
 public:
  BeamSearch(StepDecoder& dec, const Batch& batch, const DecodeOptions& opt)
      : dec_(dec),
        batch_(batch),
        opt_(opt),
        B_(batch.B),
        K_(opt.beam),
        live_(B_, std::vector<Live>(K_)),
        finished_(B_),
        closed_(B_, false),
        cut_(B_, false),
        first_row_(B_),
        prev_(size_t(B_) * K_, Vocab::kBos) {
    for (int b = 0; b < B_; ++b) first_row_[b] = b * K_;
    rows_now_ = B_ * K_;
  }

  // Source b's best nbest hypotheses, best first.
  std::vector<std::vector<Hypothesis>> run() {
    const int steps = max_steps(batch_, opt_, dec_);
    for (int t = 0; t < steps; ++t) {
      const NextTokenScores s = dec_.step(prev_);
      G_ = static_cast<int>(s.weights.size(1));
      const Tensor logp = log_probs(s.logits);
      std::vector<int> parents(rows_now_, 0);
      bool any_open = false;
      for (int b = 0; b < B_; ++b) any_open = expand(b, t, logp, s, parents) || any_open;
      if (!any_open) break;
      dec_.reorder(parents);
      drop_closed_sources();
    }
    return results();
  }

 private:
  struct Live {
    std::vector<int> tokens;
    std::vector<std::vector<float>> rows;  // G * n weights (and the trace) per step
    float logp = 0.0f;
  };
  struct Done {
    Live hyp;
    float score;
  };

  float normalised(float logp, size_t len) const {
    if (opt_.length_penalty <= 0.0f) return logp;
    const float l = static_cast<float>(len);
    if (opt_.length_norm == DecodeOptions::LengthNorm::kGnmt)
      return logp / std::pow((5.0f + l) / 6.0f, opt_.length_penalty);
    return logp / std::pow(l, opt_.length_penalty);
  }

  // Wu et al.'s coverage penalty: beta * sum_i log(min(sum_t a_ti, 1)) over the source positions
  // (the mean of the G maps); attention never received counts as 1e-6, not log 0.
  float coverage(const Live& h, int n) const {
    if (opt_.coverage_penalty <= 0.0f || n == 0) return 0.0f;
    std::vector<double> received(n, 0.0);
    for (const auto& row : h.rows)
      for (int g = 0; g < G_; ++g)
        for (int i = 0; i < n; ++i) received[i] += row[size_t(g) * n + i] / G_;
    double sum = 0.0;
    for (double c : received) sum += std::log(std::clamp(c, 1e-6, 1.0));
    return static_cast<float>(opt_.coverage_penalty * sum);
  }

  float final_score(const Live& h, size_t len, int b) const {
    return normalised(h.logp, len) + coverage(h, batch_.src_lengths[b]);
  }

  // Source b's step t: its K best continuations become its rows (parents[] says whose state each
  // continues), </s> continuations go to its finished list. Returns whether b is still open.
  bool expand(int b, int t, const Tensor& logp, const NextTokenScores& step, std::vector<int>& parents) {
    const int r0 = first_row_[b];
    if (r0 < 0) return false;
    if (closed_[b]) {
      for (int k = 0; k < K_; ++k) parents[r0 + k] = r0;  // keep the rows busy; results ignored
      return false;
    }
    const int V = static_cast<int>(logp.size(1));
    // Candidates (score, row, token); at t = 0 all K rows are the same, so only row 0 expands.
    // (K x V of them: one buffer per thread for every step of every search, which a vector per
    // step, or per search at batch 1, would map and unmap: ~250 page faults a step.)
    thread_local std::vector<std::tuple<float, int, int>> cand;
    cand.clear();
    for (int k = 0; k < (t == 0 ? 1 : K_); ++k) {
      const float* lp = logp.data() + int64_t(r0 + k) * V;
      for (int v = Vocab::kEos; v < V; ++v) cand.emplace_back(live_[b][k].logp + lp[v], k, v);
    }
    const size_t keep = std::min(cand.size(), size_t(2 * K_));
    std::partial_sort(cand.begin(), cand.begin() + keep, cand.end(),
                      [](const auto& x, const auto& y) { return std::get<0>(x) > std::get<0>(y); });
    std::vector<Live> next;
    for (size_t i = 0; i < keep && static_cast<int>(next.size()) < K_; ++i) {
      const auto [score, k, v] = cand[i];
      Live h = live_[b][k];
      h.rows.push_back(weights_row(step, r0 + k, batch_.src_lengths[b]));
      h.logp = score;
      if (v == Vocab::kEos) {
        const float final = final_score(h, live_[b][k].tokens.size() + 1, b);
        add_finished(b, {std::move(h), final});
        continue;
      }
      h.tokens.push_back(v);
      parents[r0 + static_cast<int>(next.size())] = r0 + k;
      prev_[r0 + static_cast<int>(next.size())] = v;
      next.push_back(std::move(h));
    }
    while (static_cast<int>(next.size()) < K_) {  // (tiny vocabularies) pad with a dead copy
      Live dead = next.empty() ? live_[b][0] : next.back();
      dead.logp = -INFINITY;
      parents[r0 + static_cast<int>(next.size())] = r0;
      prev_[r0 + static_cast<int>(next.size())] = Vocab::kEos;
      next.push_back(std::move(dead));
    }
    live_[b] = std::move(next);
    close_if_done(b);
    if (!closed_[b] && t + 1 >= step_limit(batch_.src_lengths[b], opt_)) {  // out of steps: cut here
      closed_[b] = cut_[b] = true;
      ++closed_in_decoder_;
    }
    return !closed_[b];
  }

  void add_finished(int b, Done d) {  // keep the K best finished hypotheses
    auto& fin = finished_[b];
    if (static_cast<int>(fin.size()) < K_) {
      fin.push_back(std::move(d));
      return;
    }
    auto worst =
        std::min_element(fin.begin(), fin.end(), [](const auto& x, const auto& y) { return x.score < y.score; });
    if (worst->score < d.score) *worst = std::move(d);
  }

  // Done when K hypotheses have finished and none of them is beaten by the best live one at its
  // current length (the usual heuristic: live scores only fall as tokens are added; the
  // coverage penalty, at most 0, is left out of the live bound).
  void close_if_done(int b) {
    if (static_cast<int>(finished_[b].size()) < K_) return;
    float best_finished = -INFINITY;
    for (const auto& f : finished_[b]) best_finished = std::max(best_finished, f.score);
    if (normalised(live_[b][0].logp, live_[b][0].tokens.size() + 1) <= best_finished) {
      closed_[b] = true;
      ++closed_in_decoder_;
    }
  }

  // Finished sources leave the decoder once they are worth it (worth_dropping).
  void drop_closed_sources() {
    if (!worth_dropping(closed_in_decoder_ * K_, rows_now_)) return;
    std::vector<int> rows, next_first(B_, -1), next_prev;
    for (int b = 0; b < B_; ++b) {
      if (first_row_[b] < 0 || closed_[b]) continue;
      next_first[b] = static_cast<int>(rows.size());
      for (int k = 0; k < K_; ++k) rows.push_back(first_row_[b] + k), next_prev.push_back(prev_[first_row_[b] + k]);
    }
    if (dec_.keep(rows)) {
      first_row_ = std::move(next_first), prev_ = std::move(next_prev);
      rows_now_ = static_cast<int>(rows.size()), closed_in_decoder_ = 0;
    }
  }

  std::vector<std::vector<Hypothesis>> results() {
    std::vector<std::vector<Hypothesis>> out(B_);
    for (int b = 0; b < B_; ++b) {
      if (!closed_[b] || cut_[b])  // out of steps: the live hypotheses, cut at the limit, compete with the finished
        for (const Live& h : live_[b])
          if (std::isfinite(h.logp))
            finished_[b].push_back({h, final_score(h, std::max<size_t>(h.tokens.size(), 1), b)});
      if (finished_[b].empty()) finished_[b].push_back({live_[b][0], -INFINITY});
      std::stable_sort(finished_[b].begin(), finished_[b].end(),
                       [](const Done& x, const Done& y) { return x.score > y.score; });
      for (size_t i = 0; i < finished_[b].size() && static_cast<int>(i) < opt_.nbest; ++i) {
        const Done& d = finished_[b][i];
        Hypothesis h;
        h.tokens = d.hyp.tokens;
        h.score = d.score;
        h.log_prob = d.hyp.logp;
        set_attention(h, d.hyp.rows, G_, batch_.src_lengths[b]);
        out[b].push_back(std::move(h));
      }
    }
    return out;
  }

  StepDecoder& dec_;
  const Batch& batch_;
  const DecodeOptions& opt_;
  const int B_, K_;
  std::vector<std::vector<Live>> live_;
  std::vector<std::vector<Done>> finished_;
  std::vector<bool> closed_;
  std::vector<bool> cut_;       // closed at the length limit, not by the finished hypotheses
  std::vector<int> first_row_;  // source b's first row in the decoder (-1 once dropped)
  std::vector<int> prev_;       // every row's previous token
  int rows_now_ = 0, closed_in_decoder_ = 0, G_ = 1;
};

std::vector<std::vector<Hypothesis>> beam_search(StepDecoder& dec, const Batch& batch, const DecodeOptions& opt) {
  return BeamSearch(dec, batch, opt).run();
}

}  // namespace

void DecodeOptions::validate() const {
  auto check = [](const char* name, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      throw std::invalid_argument(std::string("decode: ") + name + " must be in [" + std::to_string(lo) + ", " +
                                  std::to_string(hi) + "], got " + std::to_string(v));
  };
  check("beam", beam, 1, kMaxBeam);
  check("nbest", nbest, 1, beam);
  check("max_length", max_length, 0, kMaxDecodeLength);
  check("window_back", window_back, -1, INT32_MAX);
  check("window_forward", window_forward, -1, INT32_MAX);
  auto check_float = [](const char* name, float v, float hi) {
    if (!(v >= 0.0f && v <= hi))  // NaN fails too
      throw std::invalid_argument(std::string("decode: ") + name + " must be in [0, " + std::to_string(int(hi)) +
                                  "], got " + std::to_string(v));
  };
  check_float("length_penalty", length_penalty, 100.0f);
  check_float("coverage_penalty", coverage_penalty, 100.0f);
  check_float("max_length_ratio", max_length_ratio, 1000.0f);
}

std::vector<std::vector<Hypothesis>> decode_nbest(const Model& model, const Batch& batch, const DecodeOptions& opt) {
  return decode_nbest(std::vector<const Model*>{&model}, batch, opt);
}

std::vector<std::vector<Hypothesis>> decode_nbest(const std::vector<const Model*>& models, const Batch& batch,
                                                  const DecodeOptions& opt) {
  opt.validate();
  if (models.empty()) throw std::invalid_argument("decode: no model");
  NoGradScope no_grad;
  std::unique_ptr<StepDecoder> dec;
  if (models.size() == 1) {
    dec = models[0]->decoder(batch, opt.beam, opt);
  } else {
    std::vector<std::unique_ptr<StepDecoder>> members;
    for (const Model* m : models) members.push_back(m->decoder(batch, opt.beam, opt));
    dec = std::make_unique<EnsembleDecoder>(std::move(members));
  }
  if (opt.beam > 1) return beam_search(*dec, batch, opt);
  std::vector<std::vector<Hypothesis>> out;
  for (Hypothesis& h : greedy(*dec, batch, opt)) out.push_back({std::move(h)});
  return out;
}

std::vector<Hypothesis> decode(const Model& model, const Batch& batch, const DecodeOptions& opt) {
  std::vector<Hypothesis> best;
  for (auto& list : decode_nbest(model, batch, opt)) best.push_back(std::move(list.front()));
  return best;
}

}  // namespace attend
