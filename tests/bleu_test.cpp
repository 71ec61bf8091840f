// BLEU and chrF as sacrebleu computes them: hand-worked values, sacrebleu's own published
// examples, and the 13a tokenizer on the cases its regular expressions treat specially.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "attend/eval/bleu.h"
#include "attend/eval/chrf.h"

namespace attend {
namespace {

TEST(Tokenize13a, SplitsAsMtevalDoes) {
  // Expected values from sacrebleu's regular expressions (Python's re) on the same strings.
  EXPECT_EQ(tokenize_13a("Hello, world! It's 3.14 and 1,000 - 2-3."), "Hello , world ! It's 3.14 and 1,000 - 2 - 3 .");
  EXPECT_EQ(tokenize_13a("“Señor,” dijo él: ¿qué?"), "“Señor , ” dijo él : ¿qué ?");
  EXPECT_EQ(tokenize_13a("a..b,,c 5.,6 x&amp;y &lt;tag&gt;"), "a . . b , , c 5 . , 6 x & y < tag >");
  EXPECT_EQ(tokenize_13a("e.g. U.S.A. 10-20%"), "e . g . U . S . A . 10 - 20 %");
  EXPECT_EQ(tokenize_13a("end.\u00a0Next\u3000word"), "end . Next word");  // Unicode spaces split words
  EXPECT_EQ(tokenize_13a(""), "");
  EXPECT_EQ(tokenize_13a("   "), "");
  EXPECT_THROW(tokenize_13a("bad \xff byte"), std::invalid_argument);
}

TEST(Bleu, HandWorkedSentence) {
  // 1-grams 5/6, 2-grams 3/5, 3-grams 2/4, 4-grams 1/3, equal lengths: (1/12)^(1/4).
  const BleuScore s = corpus_bleu({"the cat sat on the mat"}, {"the cat sat on a mat"});
  EXPECT_NEAR(s.score, 100.0 * std::pow(1.0 / 12.0, 0.25), 1e-9);
  EXPECT_NEAR(s.precisions[0], 500.0 / 6.0, 1e-9);
  EXPECT_NEAR(s.precisions[3], 100.0 / 3.0, 1e-9);
  EXPECT_EQ(s.brevity_penalty, 1.0);
  EXPECT_EQ(s.str(), std::string("BLEU|") + kBleuSignature +
                         " = 53.73 83.3/60.0/50.0/33.3 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)");
}

TEST(Bleu, ExpSmoothingAndBrevityPenalty) {
  // 3-grams 0/3 and 4-grams 0/2: mteval's smoothing gives 1/(2·3) and 1/(4·2).
  BleuScore s = corpus_bleu({"a b c d e"}, {"a b x d e"});
  EXPECT_NEAR(s.score, std::pow(80.0 * 50.0 * (100.0 / 6.0) * 12.5, 0.25), 1e-9);
  // Shorter than the reference: BP = exp(1 - 6/5).
  s = corpus_bleu({"a b c d e"}, {"a b c d e f"});
  EXPECT_NEAR(s.brevity_penalty, std::exp(1.0 - 6.0 / 5.0), 1e-12);
  EXPECT_NEAR(s.score, 100.0 * std::exp(1.0 - 6.0 / 5.0), 1e-9);
  // No 3-gram in the hypothesis at all: 0 (sacrebleu stops at an order with no n-grams).
  EXPECT_EQ(corpus_bleu({"the cat"}, {"the cat sat"}).score, 0.0);
  EXPECT_EQ(corpus_bleu({"x y z w"}, {"a b c d"}).score, 0.0);
  EXPECT_EQ(corpus_bleu({""}, {"a b c d"}).score, 0.0);
  EXPECT_EQ(corpus_bleu({}, {}).score, 0.0);
}

TEST(Bleu, CorpusStatisticsAreSummedBeforeTheScore) {
  const std::vector<std::string> hyp = {"the cat sat on the mat", "a b c d e"},
                                 ref = {"the cat sat on a mat", "a b x d e"};
  BleuStats stats;
  stats.add(hyp[0], ref[0]);
  stats.add(hyp[1], ref[1]);
  EXPECT_EQ(stats.correct, (std::array<int64_t, 4>{9, 5, 2, 1}));
  EXPECT_EQ(stats.total, (std::array<int64_t, 4>{11, 9, 7, 5}));
  EXPECT_DOUBLE_EQ(corpus_bleu(hyp, ref).score, bleu_from_stats(stats).score);
  EXPECT_THROW(corpus_bleu({"a"}, {"a", "b"}), std::invalid_argument);
}

TEST(Chrf, SacrebleuExamples) {
  // The values sacrebleu prints for these (its documentation and the Hugging Face metric card).
  EXPECT_NEAR(corpus_chrf({"The relationship between Obama and Netanyahu is not exactly friendly."},
                          {"The ties between Obama and Netanyahu are not particularly friendly."})
                  .score,
              61.576379378113785, 1e-9);
  EXPECT_NEAR(corpus_chrf({"The relationship between cats and dogs is not exactly friendly.",
                           "a good bookshop is just a genteel black hole that knows how to read."},
                          {"The relationship between dogs and cats is not exactly friendly.",
                           "A good bookshop is just a genteel Black Hole that knows how to read."})
                  .score,
              84.64214891738334, 1e-9);
}

TEST(Chrf, EdgeCases) {
  EXPECT_NEAR(corpus_chrf({"abc"}, {"abc"}).score, 100.0, 1e-12);
  EXPECT_NEAR(corpus_chrf({"a b c"}, {"abc"}).score, 100.0, 1e-12) << "whitespace is not counted";
  EXPECT_EQ(corpus_chrf({"xyz"}, {"abc"}).score, 0.0);
  EXPECT_EQ(corpus_chrf({""}, {"abc"}).score, 0.0);
  EXPECT_EQ(corpus_chrf({}, {}).score, 0.0);
  // Code points, not bytes: "é" is one character n-gram.
  ChrfStats s;
  s.add("é", "é");
  EXPECT_EQ(s.hyp[0], 1);
  EXPECT_EQ(s.hyp[1], 0);
  EXPECT_EQ(corpus_chrf({"é"}, {"é"}).str(), std::string("chrF2|") + kChrfSignature + " = 100.00");
  EXPECT_THROW(corpus_chrf({"a"}, {}), std::invalid_argument);
}

}  // namespace
}  // namespace attend
