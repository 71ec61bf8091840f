#include "attend/eval/bleu.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string_view>
#include <unordered_map>

#include "attend/data/utf8.h"

namespace attend {

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

bool is_digit(char32_t c) { return c >= U'0' && c <= U'9'; }
bool is_period_or_comma(char32_t c) { return c == U'.' || c == U','; }

// mteval's first rule: these ASCII symbols become tokens of their own.
bool is_split_symbol(char32_t c) {
  return (c >= 0x7b && c <= 0x7e) || (c >= 0x5b && c <= 0x60) || (c >= 0x20 && c <= 0x26) || (c >= 0x28 && c <= 0x2b) ||
         (c >= 0x3a && c <= 0x40) || c == U'/';
}

// One left-to-right pass of a two-character rule, matches not overlapping (as a regular
// expression substitution): where match(s[i], s[i+1]), writes emit(s[i], s[i+1]) and skips both.
template <class Match, class Emit>
std::u32string two_char_rule(const std::u32string& s, Match match, Emit emit) {
  std::u32string out;
  out.reserve(s.size() + s.size() / 4);
  for (size_t i = 0; i < s.size();) {
    if (i + 1 < s.size() && match(s[i], s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out.push_back(s[i++]);
    }
  }
  return out;
}

std::vector<std::string> split_tokens(const std::string& tokenized) {
  std::vector<std::string> tokens;
  size_t start = 0;
  while (start < tokenized.size()) {
    size_t end = tokenized.find(' ', start);
    if (end == std::string::npos) end = tokenized.size();
    if (end > start) tokens.push_back(tokenized.substr(start, end - start));
    start = end + 1;
  }
  return tokens;
}

// Every n-gram of `tokens` for one n, joined by a byte that cannot occur in a token.
std::unordered_map<std::string, int64_t> ngram_counts(const std::vector<std::string>& tokens, size_t n) {
  std::unordered_map<std::string, int64_t> counts;
  for (size_t i = 0; i + n <= tokens.size(); ++i) {
    std::string key = tokens[i];
    for (size_t k = 1; k < n; ++k) key.append(1, '\x01').append(tokens[i + k]);
    ++counts[key];
  }
  return counts;
}

}  // namespace

std::string tokenize_13a(const std::string& line) {
  std::string s = line;
  replace_all(s, "<skipped>", "");
  replace_all(s, "-\n", "");
  replace_all(s, "\n", " ");
  replace_all(s, "&quot;", "\"");
  replace_all(s, "&amp;", "&");
  replace_all(s, "&lt;", "<");
  replace_all(s, "&gt;", ">");
  std::u32string spaced;
  spaced.push_back(U' ');
  for (char32_t c : utf8_to_codepoints(s)) {
    if (is_split_symbol(c))
      spaced.append({U' ', c, U' '});
    else
      spaced.push_back(c);
  }
  spaced.push_back(U' ');
  // Periods and commas split off unless preceded by a digit, then unless followed by one.
  spaced = two_char_rule(
      spaced, [](char32_t a, char32_t b) { return !is_digit(a) && is_period_or_comma(b); },
      [](std::u32string& o, char32_t a, char32_t b) {
        o.append({a, U' ', b, U' '});
      });
  spaced = two_char_rule(
      spaced, [](char32_t a, char32_t b) { return is_period_or_comma(a) && !is_digit(b); },
      [](std::u32string& o, char32_t a, char32_t b) {
        o.append({U' ', a, U' ', b});
      });
  spaced = two_char_rule(
      spaced, [](char32_t a, char32_t b) { return is_digit(a) && b == U'-'; },
      [](std::u32string& o, char32_t a, char32_t b) {
        o.append({a, U' ', b, U' '});
      });
  std::u32string out;  // whitespace (Python's str.split) collapsed to single spaces
  for (char32_t c : spaced) {
    if (!is_unicode_space(c))
      out.push_back(c);
    else if (!out.empty() && out.back() != U' ')
      out.push_back(U' ');
  }
  if (!out.empty() && out.back() == U' ') out.pop_back();
  return codepoints_to_utf8(out);
}

void BleuStats::add(const std::string& hypothesis, const std::string& reference) {
  const std::vector<std::string> hyp = split_tokens(tokenize_13a(hypothesis));
  const std::vector<std::string> ref = split_tokens(tokenize_13a(reference));
  hyp_len += static_cast<int64_t>(hyp.size());
  ref_len += static_cast<int64_t>(ref.size());
  for (size_t n = 1; n <= 4; ++n) {
    const auto ref_counts = ngram_counts(ref, n);
    for (const auto& [gram, count] : ngram_counts(hyp, n)) {
      const auto it = ref_counts.find(gram);
      correct[n - 1] += it == ref_counts.end() ? 0 : std::min(count, it->second);
      total[n - 1] += count;
    }
  }
}

BleuScore bleu_from_stats(const BleuStats& stats) {
  BleuScore s;
  s.hyp_len = stats.hyp_len, s.ref_len = stats.ref_len;
  s.brevity_penalty = stats.hyp_len >= stats.ref_len ? 1.0
                      : stats.hyp_len > 0            ? std::exp(1.0 - double(stats.ref_len) / double(stats.hyp_len))
                                                     : 0.0;
  bool any = false;
  for (int64_t c : stats.correct) any = any || c > 0;
  if (!any) return s;  // no match at all: 0
  double smooth = 1.0, log_sum = 0.0;
  for (size_t n = 0; n < 4; ++n) {
    if (stats.total[n] == 0) break;  // the remaining precisions stay 0: log 0 ends the score
    if (stats.correct[n] == 0) {
      smooth *= 2.0;
      s.precisions[n] = 100.0 / (smooth * double(stats.total[n]));
    } else {
      s.precisions[n] = 100.0 * double(stats.correct[n]) / double(stats.total[n]);
    }
  }
  for (double p : s.precisions) {
    if (p == 0.0) return s;  // sacrebleu's log(0) = -9999999999: a score of 0
    log_sum += std::log(p);
  }
  s.score = s.brevity_penalty * std::exp(log_sum / 4.0);
  return s;
}

BleuScore corpus_bleu(const std::vector<std::string>& hypotheses, const std::vector<std::string>& references) {
  if (hypotheses.size() != references.size())
    throw std::invalid_argument("corpus_bleu: " + std::to_string(hypotheses.size()) + " hypotheses for " +
                                std::to_string(references.size()) + " references");
  BleuStats stats;
  for (size_t i = 0; i < hypotheses.size(); ++i) stats.add(hypotheses[i], references[i]);
  return bleu_from_stats(stats);
}

std::string BleuScore::str() const {
  char buf[320];
  const double ratio = ref_len > 0 ? double(hyp_len) / double(ref_len) : 0.0;
  std::snprintf(buf, sizeof buf,
                "BLEU|%s = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld ref_len = %lld)",
                kBleuSignature, score, precisions[0], precisions[1], precisions[2], precisions[3], brevity_penalty,
                ratio, static_cast<long long>(hyp_len), static_cast<long long>(ref_len));
  return buf;
}

}  // namespace attend
