// Checkpoint averaging and the checkpoints a run keeps for it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "attend/io/files.h"
#include "attend/models/average.h"
#include "attend/models/translator.h"
#include "cli_run.h"

namespace attend {
namespace {

class Averaging : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (std::filesystem::temp_directory_path() / ("attend_average_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir_);
    std::ofstream data(dir_ + "/data.tsv");
    for (const char* w : {"ab", "ba", "abc", "cab", "bca", "aab", "cc", "acb"}) data << w << '\t' << w << w << '\n';
    data.close();
    const auto r = testing::run("train --train " + dir_ + "/data.tsv --dev " + dir_ +
                                "/data.tsv --hidden 8 --embedding 4 --attention-dim 4 --batch 4 --max-steps 12 "
                                "--eval-every 2 --patience 100 --keep-checkpoints 3 --out " +
                                dir_ + "/run");
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::string dir_;
};
std::string Averaging::dir_;

TEST_F(Averaging, TheRunKeepsItsLastCheckpoints) {
  std::vector<std::string> kept;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/run/checkpoints"))
    kept.push_back(e.path().filename().string());
  std::sort(kept.begin(), kept.end());
  EXPECT_EQ(kept, (std::vector<std::string>{"step-00000008", "step-00000010", "step-00000012"}));
  // A new run in the same directory (--overwrite) does not inherit the old run's checkpoints.
  const auto r = testing::run("train --train " + dir_ + "/data.tsv --dev " + dir_ +
                              "/data.tsv --hidden 8 --embedding 4 --attention-dim 4 --batch 4 --max-steps 2 "
                              "--overwrite --out " +
                              dir_ + "/run2");
  ASSERT_EQ(r.code, 0) << r.output;
  std::filesystem::create_directories(dir_ + "/run2/checkpoints/step-00000099");
  const auto again = testing::run("train --train " + dir_ + "/data.tsv --dev " + dir_ +
                                  "/data.tsv --hidden 8 --embedding 4 --attention-dim 4 --batch 4 --max-steps 2 "
                                  "--overwrite --out " +
                                  dir_ + "/run2");
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/run2/checkpoints/step-00000099"));
}

TEST_F(Averaging, TheAverageOfIdenticalCheckpointsIsTheCheckpoint) {
  const std::string one = dir_ + "/run/checkpoints/step-00000012", out = dir_ + "/same";
  average_checkpoints({one, one, one}, out);
  EXPECT_EQ(read_file(out + "/model.safetensors"), read_file(one + "/model.safetensors"));
}

TEST_F(Averaging, EachWeightIsTheMeanAndMismatchesAreNamed) {
  const std::string a = dir_ + "/run/checkpoints/step-00000008", b = dir_ + "/run/checkpoints/step-00000012";
  const auto r = testing::run("average --out " + dir_ + "/avg " + a + " " + b);
  ASSERT_EQ(r.code, 0) << r.output;
  const Translator ta = Translator::load(a), tb = Translator::load(b), avg = Translator::load(dir_ + "/avg");
  const auto pa = ta.model().parameters(), pb = tb.model().parameters(), pm = avg.model().parameters();
  int differ = 0;
  for (size_t p = 0; p < pa.size(); ++p)
    for (int64_t i = 0; i < pa[p].var.value().numel(); ++i) {
      const float x = pa[p].var.value().data()[i], y = pb[p].var.value().data()[i];
      ASSERT_FLOAT_EQ(pm[p].var.value().data()[i], float((double(x) + double(y)) / 2)) << pa[p].name;
      differ += x != y;
    }
  EXPECT_GT(differ, 0) << "the two checkpoints must differ for this to test anything";
  EXPECT_EQ(testing::run("average --out " + dir_ + "/avg " + a).code, 1) << "--out holds a model";
  const auto other =
      testing::run("train --train " + dir_ + "/data.tsv --dev " + dir_ +
                   "/data.tsv --hidden 12 --embedding 4 --attention-dim 4 --max-steps 1 --out " + dir_ + "/other");
  ASSERT_EQ(other.code, 0) << other.output;
  const auto mismatch = testing::run("average --overwrite --out " + dir_ + "/avg " + a + " " + dir_ + "/other");
  EXPECT_EQ(mismatch.code, 1) << mismatch.output;
  EXPECT_NE(mismatch.output.find(dir_ + "/other: not a checkpoint of the same model as " + a +
                                 " (the model settings differ)"),
            std::string::npos)
      << mismatch.output;
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/avg/config.json")) << "the model in --out is kept";
  // A failed average into a new directory leaves no directory behind.
  const auto fresh = testing::run("average --out " + dir_ + "/new " + a + " " + dir_ + "/other");
  EXPECT_EQ(fresh.code, 1) << fresh.output;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/new"));
}

// Checkpoints stored in int8 (attend quantize) average as their dequantized weights: the
// average is written into the first model's weights, which must be fp32 ones.
TEST_F(Averaging, Int8CheckpointsOfATransformerAverage) {
  const auto run = testing::run("train --model transformer --dim 8 --heads 2 --ffn 16 --layers 1 --train " + dir_ +
                                "/data.tsv --dev " + dir_ +
                                "/data.tsv --batch 4 --max-steps 4 --eval-every 2 --patience 100 "
                                "--keep-checkpoints 2 --out " +
                                dir_ + "/tf");
  ASSERT_EQ(run.code, 0) << run.output;
  std::vector<std::string> q;
  for (const char* step : {"step-00000002", "step-00000004"}) {
    q.push_back(dir_ + "/tf-" + step);
    const auto r = testing::run("quantize --model " + dir_ + "/tf/checkpoints/" + step + " --out " + q.back());
    ASSERT_EQ(r.code, 0) << r.output;
  }
  const auto r = testing::run("average --out " + dir_ + "/tf-avg " + q[0] + " " + q[1]);
  ASSERT_EQ(r.code, 0) << r.output;
  // The stored weights, dequantized as stored (an int8 load would quantize them again on the
  // CPU's own grid, 7 bits without VNNI, and differ from them by up to a step of that grid).
  const Translator a = Translator::load(q[0], Precision::kFp32), b = Translator::load(q[1], Precision::kFp32);
  const Translator m = Translator::load(dir_ + "/tf-avg", Precision::kFp32);
  const auto pa = a.model().parameters(), pb = b.model().parameters(), pm = m.model().parameters();
  int differ = 0;
  for (size_t p = 0; p < pa.size(); ++p)
    for (int64_t i = 0; i < pa[p].var.value().numel(); ++i) {
      const float x = pa[p].var.value().data()[i], y = pb[p].var.value().data()[i];
      ASSERT_NEAR(pm[p].var.value().data()[i], (double(x) + double(y)) / 2, 1e-6 + 1e-5 * std::fabs(x)) << pa[p].name;
      differ += x != y;
    }
  EXPECT_GT(differ, 0);
}

}  // namespace
}  // namespace attend
