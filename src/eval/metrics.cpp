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

void check_length_bounds(const std::vector<int>& bounds) {
  for (size_t i = 0; i < bounds.size(); ++i)
    if (bounds[i] < 1 || bounds[i] > 1000000 || (i > 0 && bounds[i] <= bounds[i - 1]))
      throw std::invalid_argument("length buckets: the upper bounds must increase within [1, 1000000], got " +
                                  std::to_string(bounds[i]) + (i > 0 ? " after " + std::to_string(bounds[i - 1]) : ""));
}

std::vector<LengthBucket> score_by_length(const std::vector<size_t>& lengths, const std::vector<Tokens>& outputs,
                                          const std::vector<std::vector<Tokens>>& references,
                                          const std::vector<int>& bounds) {
  check_length_bounds(bounds);
  if (lengths.size() != outputs.size())
    throw std::invalid_argument("score_by_length: " + std::to_string(lengths.size()) + " lengths for " +
                                std::to_string(outputs.size()) + " outputs");
  const size_t n = bounds.size() + 1;
  std::vector<std::vector<Tokens>> outs(n);
  std::vector<std::vector<std::vector<Tokens>>> refs(n);
  for (size_t i = 0; i < lengths.size(); ++i) {
    const size_t b = std::lower_bound(bounds.begin(), bounds.end(), lengths[i],
                                      [](int bound, size_t length) { return size_t(bound) < length; }) -
                     bounds.begin();
    outs[b].push_back(outputs[i]), refs[b].push_back(references.at(i));
  }
  std::vector<LengthBucket> buckets(n);
  for (size_t b = 0; b < n; ++b) {
    buckets[b].first = b == 0 ? 0 : size_t(bounds[b - 1]) + 1;
    buckets[b].last = b < bounds.size() ? size_t(bounds[b]) : 0;
    buckets[b].scores = score(outs[b], refs[b]);
  }
  return buckets;
}

}  // namespace attend
