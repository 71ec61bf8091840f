// attend eval: corpus BLEU (Papineni et al. 2002) computed as sacrebleu computes it by default:
// one reference, mixed case, the 13a tokenizer of mteval-v13a (WMT), n-grams up to 4, the
// 'exp' smoothing of mteval (a precision with no match counts as 1 / (2^k total)), brevity
// penalty over the corpus. The same figures as `sacrebleu -tok 13a` on the same files.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace attend {

// sacrebleu's signature of these settings (without its version field).
inline constexpr const char* kBleuSignature = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp";

// mteval-v13a's tokenization: punctuation and symbols split off, periods and commas split off
// unless between digits, a dash after a digit split off, whitespace collapsed. UTF-8 in and
// out; throws std::invalid_argument for invalid UTF-8.
std::string tokenize_13a(const std::string& line);

// The sufficient statistics of a corpus: matches (clipped by the reference's counts) and
// hypothesis n-grams for n = 1..4, and the lengths in tokens.
struct BleuStats {
  std::array<int64_t, 4> correct{}, total{};
  int64_t hyp_len = 0, ref_len = 0;
  void add(const std::string& hypothesis, const std::string& reference);  // untokenized text
};

struct BleuScore {
  double score = 0.0;                  // 0..100
  std::array<double, 4> precisions{};  // 0..100, smoothed
  double brevity_penalty = 0.0;
  int64_t hyp_len = 0, ref_len = 0;
  // sacrebleu's text line: "BLEU|<signature> = 27.34 60.1/33.2/20.1/12.8 (BP = 1.000 ratio = 1.012
  // hyp_len = 1234 ref_len = 1219)".
  std::string str() const;
};

BleuScore bleu_from_stats(const BleuStats& stats);
// hypotheses[i] against references[i]; throws std::invalid_argument if the counts differ.
BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references);

}  // namespace attend
