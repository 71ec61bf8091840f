#include "attend/eval/chrf.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <unordered_map>

#include "attend/data/utf8.h"

namespace attend {

namespace {

std::u32string without_whitespace(const std::string& text) {
  std::u32string out;
  for (char32_t c : utf8_to_codepoints(text))
    if (!is_unicode_space(c)) out.push_back(c);
  return out;
}

std::unordered_map<std::u32string, int64_t> char_ngrams(const std::u32string& s, size_t n) {
  std::unordered_map<std::u32string, int64_t> counts;
  for (size_t i = 0; i + n <= s.size(); ++i) ++counts[s.substr(i, n)];
  return counts;
}

}  // namespace

void ChrfStats::add(const std::string& hypothesis, const std::string& reference) {
  const std::u32string h = without_whitespace(hypothesis), r = without_whitespace(reference);
  for (size_t n = 1; n <= kOrder; ++n) {
    const auto hc = char_ngrams(h, n), rc = char_ngrams(r, n);
    hyp[n - 1] += h.size() >= n ? static_cast<int64_t>(h.size() - n + 1) : 0;
    ref[n - 1] += r.size() >= n ? static_cast<int64_t>(r.size() - n + 1) : 0;
    for (const auto& [gram, count] : hc) {
      const auto it = rc.find(gram);
      if (it != rc.end()) match[n - 1] += std::min(count, it->second);
    }
  }
}

ChrfScore chrf_from_stats(const ChrfStats& stats) {
  double precision = 0.0, recall = 0.0;
  int orders = 0;  // those with n-grams on both sides
  for (int n = 0; n < ChrfStats::kOrder; ++n) {
    if (stats.hyp[n] == 0 || stats.ref[n] == 0) continue;
    precision += double(stats.match[n]) / double(stats.hyp[n]);
    recall += double(stats.match[n]) / double(stats.ref[n]);
    ++orders;
  }
  ChrfScore s;
  if (orders == 0) return s;
  precision /= orders, recall /= orders;
  const double beta2 = 4.0;
  if (precision + recall > 0.0) s.score = 100.0 * (1.0 + beta2) * precision * recall / (beta2 * precision + recall);
  return s;
}

ChrfScore corpus_chrf(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  if (hypotheses.size() != references.size())
    throw std::invalid_argument("corpus_chrf: " + std::to_string(hypotheses.size()) + " hypotheses for " +
                                std::to_string(references.size()) + " references");
  ChrfStats stats;
  for (size_t i = 0; i < hypotheses.size(); ++i) stats.add(hypotheses[i], references[i]);
  return chrf_from_stats(stats);
}

std::string ChrfScore::str() const {
  char buf[128];
  std::snprintf(buf, sizeof buf, "chrF2|%s = %.2f", kChrfSignature, score);
  return buf;
}

}  // namespace attend
