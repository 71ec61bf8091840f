// attend eval: corpus chrF (Popović 2015) computed as sacrebleu computes it by default:
// character n-grams for n = 1..6 over the text without whitespace, precision and recall
// averaged over the orders that occur, F-beta with beta = 2, statistics summed over the corpus.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace attend {

// sacrebleu's signature of these settings (without its version field).
inline constexpr const char* kChrfSignature = "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no";

struct ChrfStats {
  static constexpr int kOrder = 6;
  // Per order: hypothesis n-grams, reference n-grams, matches (clipped).
  std::array<int64_t, kOrder> hyp{}, ref{}, match{};
  void add(const std::string& hypothesis, const std::string& reference);  // UTF-8; throws if invalid
};

struct ChrfScore {
  double score = 0.0;       // 0..100
  std::string str() const;  // sacrebleu's text line: "chrF2|<signature> = 61.58"
};

ChrfScore chrf_from_stats(const ChrfStats& stats);
// hypotheses[i] against references[i]; throws std::invalid_argument if the counts differ.
ChrfScore corpus_chrf(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);

}  // namespace attend
