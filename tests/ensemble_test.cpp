// Ensembles (decode/ensemble.h): the next-token distribution is the mean of the members'
// probabilities, computed stably and keeping NaN; beam reorders and dropped rows reach every
// member; a model with itself decodes as the model alone; members must share their tokens.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <vector>

#include "attend/decode/ensemble.h"
#include "cli_run.h"

namespace attend {
namespace {

// Returns fixed logits [N,V] and records what the search asked of it.
class FixedDecoder final : public StepDecoder {
 public:
  FixedDecoder(std::vector<float> logits, int n, int v, bool can_keep = true, int steps = 100)
      : logits_(Tensor::from(Shape{n, v}, std::move(logits))), can_keep_(can_keep), steps_(steps) {}
  NextTokenScores step(const std::vector<int>&) override { return {logits_.clone(), Tensor(), Tensor()}; }
  void reorder(const std::vector<int>& parents) override { reordered = parents; }
  bool keep(const std::vector<int>& rows) override {
    kept = rows;
    return can_keep_;
  }
  int max_steps() const override { return steps_; }
  std::vector<int> reordered, kept;

 private:
  Tensor logits_;
  bool can_keep_;
  int steps_;
};

std::vector<float> probs(const std::vector<float>& logits) {
  double z = 0;
  for (float l : logits) z += std::exp(double(l));
  std::vector<float> p;
  for (float l : logits) p.push_back(static_cast<float>(std::exp(double(l)) / z));
  return p;
}

TEST(Ensemble, StepIsTheLogOfTheMeanProbability) {
  const std::vector<float> a = {1.0f, 2.0f, -1.0f}, b = {0.5f, -3.0f, 4.0f}, c = {800.0f, 0.0f, -800.0f};
  std::vector<std::unique_ptr<StepDecoder>> members;
  for (const auto& l : {a, b, c}) members.push_back(std::make_unique<FixedDecoder>(l, 1, 3));
  EnsembleDecoder e(std::move(members));
  const Tensor out = e.step({0}).logits;
  const std::vector<float> pa = probs(a), pb = probs(b), pc = {1.0f, 0.0f, 0.0f};  // c: no overflow
  for (int v = 0; v < 3; ++v) EXPECT_NEAR(out.data()[v], std::log((pa[v] + pb[v] + pc[v]) / 3.0), 1e-5) << v;
  // A token every member rules out stays at -inf; a NaN from any member is not averaged away.
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<std::unique_ptr<StepDecoder>> odd;
  odd.push_back(std::make_unique<FixedDecoder>(std::vector<float>{-inf, 0.0f, 1.0f, 2.0f}, 2, 2));
  odd.push_back(std::make_unique<FixedDecoder>(std::vector<float>{-inf, 1.0f, nan, 2.0f}, 2, 2));
  const Tensor o = EnsembleDecoder(std::move(odd)).step({0, 0}).logits;
  EXPECT_EQ(o.data()[0], -inf);
  EXPECT_TRUE(std::isnan(o.data()[2]) && std::isnan(o.data()[3]));
}

TEST(Ensemble, ReordersAndDroppedRowsReachEveryMember) {
  auto* x = new FixedDecoder({0, 0, 0, 0}, 2, 2, true, 7);
  auto* y = new FixedDecoder({0, 0, 0, 0}, 2, 2, true, 5);
  std::vector<std::unique_ptr<StepDecoder>> members;
  members.emplace_back(x), members.emplace_back(y);
  EnsembleDecoder e(std::move(members));
  e.reorder({1, 1});
  EXPECT_TRUE(e.keep({1}));
  EXPECT_EQ(x->reordered, (std::vector<int>{1, 1}));
  EXPECT_EQ(y->reordered, (std::vector<int>{1, 1}));
  EXPECT_EQ(x->kept, (std::vector<int>{1}));
  EXPECT_EQ(y->kept, (std::vector<int>{1}));
  EXPECT_EQ(e.max_steps(), 5);
  std::vector<std::unique_ptr<StepDecoder>> mixed;
  mixed.push_back(std::make_unique<FixedDecoder>(std::vector<float>{0, 0}, 1, 2, true));
  mixed.push_back(std::make_unique<FixedDecoder>(std::vector<float>{0, 0}, 1, 2, false));
  EXPECT_THROW(EnsembleDecoder(std::move(mixed)).keep({0}), std::runtime_error);
  std::vector<std::unique_ptr<StepDecoder>> shapes;
  shapes.push_back(std::make_unique<FixedDecoder>(std::vector<float>{0, 0}, 1, 2));
  shapes.push_back(std::make_unique<FixedDecoder>(std::vector<float>{0, 0, 0}, 1, 3));
  EXPECT_THROW(EnsembleDecoder(std::move(shapes)).step({0}), std::invalid_argument);
  EXPECT_THROW(EnsembleDecoder({}), std::invalid_argument);
}

// Through the CLI: a model with itself gives the model's own outputs and scores (greedy and
// beam); a model of other vocabularies is refused, naming it.
TEST(Ensemble, AModelWithItselfDecodesAsItselfAndOtherVocabulariesAreRefused) {
  const std::string dir = ::testing::TempDir() + "attend_ensemble_" + std::to_string(::getpid());
  const std::string small = "train --task dates --hidden 16 --embedding 8 --attention-dim 8 --batch 16 --max-steps 40 ";
  ASSERT_EQ(testing::run(small + "--dates-train 300 --out " + dir + "/a").code, 0);
  ASSERT_EQ(testing::run(small + "--dates-train 300 --seed 2 --out " + dir + "/b").code, 0);
  ASSERT_EQ(testing::run(small + "--dates-train 20 --out " + dir + "/c").code, 0);
  const std::string inputs = " --with-scores \"the 3rd of march, 1999\" \"11/25/26\" \"May 1st 2020\"";
  for (const char* beam : {"1", "4"}) {
    const testing::CliRun alone = testing::run("translate --model " + dir + "/a --beam " + beam + inputs);
    const testing::CliRun twice =
        testing::run("translate --model " + dir + "/a --ensemble " + dir + "/a --beam " + beam + inputs);
    ASSERT_EQ(alone.code, 0) << alone.output;
    EXPECT_EQ(twice.output, alone.output) << "beam " << beam;
    const testing::CliRun two =
        testing::run("translate --model " + dir + "/a --ensemble " + dir + "/b --beam " + beam + inputs);
    EXPECT_EQ(two.code, 0) << two.output;
    EXPECT_NE(two.output, alone.output) << "a second model changed no score";
  }
  const testing::CliRun refused =
      testing::run("eval --model " + dir + "/a --ensemble " + dir + "/c --test " + dir + "/a/test.tsv");
  EXPECT_EQ(refused.code, 2);
  EXPECT_NE(refused.output.find("--ensemble " + dir +
                                "/c: model 2 of the ensemble has another source vocabulary than "
                                "the first (37 tokens, the first 41)"),
            std::string::npos)
      << refused.output;
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace attend
