#include "attend/eval/alignment.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace attend {

namespace {
size_t argmax(const std::vector<float>& row) {
  return static_cast<size_t>(std::max_element(row.begin(), row.end()) - row.begin());
}
}  // namespace

AlignmentStats alignment_stats(const AlignmentMatrix& w) {
  AlignmentStats st;
  const size_t T = w.size();
  if (T == 0 || w[0].empty()) return st;
  const size_t S = w[0].size();
  const double band = std::max(1.0, S / 10.0);
  size_t forward = 0;
  for (size_t t = 0; t < T; ++t) {
    double h = 0.0, near = 0.0;
    const double diag = T > 1 ? double(t) * (S - 1) / (T - 1) : 0.0;
    for (size_t s = 0; s < S; ++s) {
      const double p = w[t][s];
      if (p > 0.0) h -= p * std::log(p);
      if (std::fabs(double(s) - diag) <= band) near += p;
    }
    st.entropy += h;
    st.diagonality += near;
    if (t > 0 && argmax(w[t]) >= argmax(w[t - 1])) ++forward;
  }
  st.steps = T;
  st.entropy /= T;
  st.diagonality /= T;
  st.monotonicity = T > 1 ? double(forward) / (T - 1) : 1.0;
  return st;
}

void accumulate(AlignmentStats& total, const AlignmentStats& one) {
  const double n = double(total.steps) + one.steps;
  if (n == 0) return;
  auto mix = [&](double a, double b) { return (a * total.steps + b * one.steps) / n; };
  total.monotonicity = mix(total.monotonicity, one.monotonicity);
  total.entropy = mix(total.entropy, one.entropy);
  total.diagonality = mix(total.diagonality, one.diagonality);
  total.steps += one.steps;
}

std::vector<std::pair<int, int>> hard_alignment(const AlignmentMatrix& w, size_t outputs) {
  std::vector<std::pair<int, int>> pairs;
  for (size_t j = 0; j < std::min(outputs, w.size()); ++j)
    pairs.emplace_back(static_cast<int>(argmax(w[j])), static_cast<int>(j));
  return pairs;
}

std::string pharaoh(const AlignmentMatrix& w, size_t outputs) {
  std::string out;
  for (const auto& [i, j] : hard_alignment(w, outputs)) {
    if (!out.empty()) out += ' ';
    out += std::to_string(i) + "-" + std::to_string(j);
  }
  return out;
}

WordGroups group_pieces(const std::vector<std::string>& pieces) {
  static const std::string kMarker = "\xe2\x96\x81";  // U+2581, SentencePiece's word boundary
  WordGroups g;
  for (const std::string& p : pieces) {
    const bool starts = p.rfind(kMarker, 0) == 0;
    if (starts || g.words.empty()) g.words.emplace_back();
    g.words.back() += starts ? p.substr(kMarker.size()) : p;
    g.word_of_piece.push_back(static_cast<int>(g.words.size()) - 1);
  }
  return g;
}

WordGroups one_group_per_token(const std::vector<std::string>& tokens) {
  WordGroups g;
  g.words = tokens;
  for (size_t i = 0; i < tokens.size(); ++i) g.word_of_piece.push_back(static_cast<int>(i));
  return g;
}

AlignmentMatrix merge_subwords(const AlignmentMatrix& weights, const WordGroups& source, const WordGroups& target) {
  const size_t pieces = target.word_of_piece.size(), words = target.words.size();
  if (weights.size() < pieces)
    throw std::invalid_argument("merge_subwords: " + std::to_string(weights.size()) + " rows for " +
                                std::to_string(pieces) + " target pieces");
  const size_t extra = weights.size() - pieces;
  AlignmentMatrix out(words + extra, std::vector<float>(source.words.size(), 0.0f));
  std::vector<int> count(words + extra, 0);
  for (size_t r = 0; r < weights.size(); ++r) {
    if (weights[r].size() != source.word_of_piece.size())
      throw std::invalid_argument("merge_subwords: row " + std::to_string(r) + " has " +
                                  std::to_string(weights[r].size()) + " weights for " +
                                  std::to_string(source.word_of_piece.size()) + " source pieces");
    const size_t row = r < pieces ? size_t(target.word_of_piece[r]) : words + (r - pieces);
    for (size_t s = 0; s < weights[r].size(); ++s) out[row][source.word_of_piece[s]] += weights[r][s];
    ++count[row];
  }
  for (size_t row = 0; row < out.size(); ++row)
    for (float& w : out[row]) w /= float(std::max(count[row], 1));
  return out;
}

}  // namespace attend
