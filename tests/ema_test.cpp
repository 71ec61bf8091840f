// --ema: the moving average is what is evaluated and saved, it is kept in the training state,
// and a resumed run continues it exactly.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "attend/io/safetensors.h"
#include "attend/models/translator.h"
#include "attend/train/trainer.h"
#include "cli_run.h"

namespace attend {
namespace {

class Ema : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / ("attend_ema_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir_);
    std::ofstream data(dir_ + "/data.tsv");
    for (const char* w : {"ab", "ba", "abc", "cab", "bca", "aab", "cc", "acb"}) data << w << '\t' << w << w << '\n';
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string train(const std::string& out, const std::string& extra) {
    return "train --train " + dir_ + "/data.tsv --dev " + dir_ +
           "/data.tsv --hidden 8 --embedding 4 --attention-dim 4 --batch 4 --ema 0.9 --eval-every 100 "
           "--patience 100 --out " +
           dir_ + "/" + out + " " + extra;
  }
  std::string dir_;
};

TEST_F(Ema, TheSavedModelIsTheMovingAverage) {
  const auto r = testing::run(train("run", "--max-steps 6"));
  ASSERT_EQ(r.code, 0) << r.output;
  const auto state = load_safetensors(dir_ + "/run/" + kTrainStateFile);
  const Translator saved = Translator::load(dir_ + "/run");
  int differ = 0;
  for (const auto& p : saved.model().parameters()) {
    const Tensor& ema = state.at("ema." + p.name);
    const Tensor& raw = state.at("param." + p.name);
    for (int64_t i = 0; i < ema.numel(); ++i) {
      ASSERT_EQ(p.var.value().data()[i], ema.data()[i]) << p.name;
      differ += raw.data()[i] != ema.data()[i];
    }
  }
  EXPECT_GT(differ, 0) << "after 6 updates the average must lag the weights";
  EXPECT_EQ(testing::run(train("run", "--max-steps 6 --ema 1")).code, 2) << "a decay of 1 never moves";
}

TEST_F(Ema, AResumedRunContinuesTheAverageExactly) {
  ASSERT_EQ(testing::run(train("whole", "--max-steps 8")).code, 0);
  ASSERT_EQ(testing::run(train("split", "--max-steps 4")).code, 0);
  const auto resumed = testing::run("train --resume " + dir_ + "/split --max-steps 8");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  const auto a = load_safetensors(dir_ + "/whole/" + kTrainStateFile);
  const auto b = load_safetensors(dir_ + "/split/" + kTrainStateFile);
  int compared = 0;
  for (const auto& [name, t] : a) {
    if (name.rfind("ema.", 0) != 0) continue;
    ASSERT_TRUE(b.count(name)) << name;
    for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.data()[i], b.at(name).data()[i]) << name;
    ++compared;
  }
  EXPECT_GT(compared, 0);
}

}  // namespace
}  // namespace attend
