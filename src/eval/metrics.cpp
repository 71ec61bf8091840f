#include "attend/eval/metrics.h"

#include <algorithm>
#include <stdexcept>

namespace attend {

size_t edit_distance(const Tokens& a, const Tokens& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

Scores score(const std::vector<Tokens>& outputs, const std::vector<std::vector<Tokens>>& references) {
  if (outputs.size() != references.size()) {
    throw std::invalid_argument("score: " + std::to_string(outputs.size()) + " outputs but " +
                                std::to_string(references.size()) + " reference sets");
  }
  Scores s;
  s.sentences = outputs.size();
  size_t exact = 0, matched = 0, ref_tokens = 0, errors = 0;
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (references[i].empty())
      throw std::invalid_argument("score: sentence " + std::to_string(i) + " has no reference");
    size_t best = SIZE_MAX, best_len = 0, best_match = 0;
    bool equal = false;
    for (const Tokens& ref : references[i]) {
      equal = equal || ref == outputs[i];
      const size_t d = edit_distance(outputs[i], ref);
      if (d < best || (d == best && ref.size() > best_len)) {
        best = d, best_len = ref.size(), best_match = 0;
        for (size_t k = 0; k < std::min(ref.size(), outputs[i].size()); ++k) best_match += ref[k] == outputs[i][k];
      }
    }
    exact += equal;
    errors += best;
    ref_tokens += best_len;
    matched += best_match;
  }
  if (s.sentences) s.exact_match = double(exact) / s.sentences;
  if (ref_tokens) {
    s.token_accuracy = double(matched) / ref_tokens;
    s.error_rate = double(errors) / ref_tokens;
  }
  return s;
}

}  // namespace attend
