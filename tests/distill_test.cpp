// attend train --teacher: token-level knowledge distillation from trained models.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "attend/io/safetensors.h"
#include "attend/train/trainer.h"
#include "cli_run.h"

namespace {

namespace fs = std::filesystem;

using attend::testing::CliRun;
using attend::testing::run;

std::string temp_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("attend_distill_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// The dev exact match of a run's last evaluation (metrics.jsonl).
double last_exact_match(const std::string& dir) {
  std::ifstream in(dir + "/metrics.jsonl");
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  return nlohmann::json::parse(last).at("dev_exact_match").get<double>();
}

const std::string kSmall =
    "train --task dates --hidden 16 --embedding 8 --attention-dim 8 --batch 16 --dates-train 300 ";

// A teacher's weight of 0 is the run without it, bit for bit (the teacher's forward pass takes
// nothing from the run's random draws); a student taught by the teacher alone (weight 1, the
// reference tokens unused) learns the task from its probabilities, which a teacher whose steps
// were misaligned with the student's could not teach; a Transformer teaches an RNN.
TEST(Distill, WeightZeroIsTheRunWithoutAndTheTeacherAloneTeaches) {
  const std::string dir = temp_dir("teaches");
  const std::string task =
      "train --task dates --hidden 32 --embedding 16 --attention-dim 16 --batch 32 --dates-train 2000 ";
  CliRun r = run(task + "--max-steps 400 --lr 5e-3 --out " + dir + "/teacher");
  ASSERT_EQ(r.code, 0) << r.output;
  const double teacher = last_exact_match(dir + "/teacher");
  ASSERT_GT(teacher, 0.3) << "the teacher did not learn the task";

  r = run(task + "--max-steps 5 --out " + dir + "/plain");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run(task + "--max-steps 5 --teacher " + dir + "/teacher --teacher-weight 0 --out " + dir + "/zero");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("distilling from 1 teacher"), std::string::npos) << r.output;
  const auto plain = attend::load_safetensors(dir + "/plain/model.safetensors"),
             zero = attend::load_safetensors(dir + "/zero/model.safetensors");
  for (const auto& [name, t] : plain) EXPECT_EQ(t.to_vector(), zero.at(name).to_vector()) << name;

  r = run(task + "--max-steps 400 --lr 5e-3 --seed 2 --label-smoothing 0 --teacher " + dir +
          "/teacher --teacher-weight 1 --out " + dir + "/student");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_GT(last_exact_match(dir + "/student"), 0.5 * teacher)
      << "taught by the teacher alone (its dev exact match " << teacher << ")";

  r =
      run("train --task dates --model transformer --dim 16 --heads 2 --ffn 16 --layers 1 --batch 32 --dates-train "
          "2000 --max-steps 20 --out " +
          dir + "/transformer");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run(task + "--max-steps 5 --teacher " + dir + "/transformer --teacher " + dir + "/teacher --out " + dir +
          "/mixed");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("distilling from 2 teacher"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

// What is refused, before anything is written: a teacher of other vocabularies, the run's own
// --out, a teacher weight outside [0, 1], a --teacher given to --resume. A resumed run keeps its
// teachers, and refuses to continue when one of them has been replaced by another model.
TEST(Distill, RefusesAnotherVocabularyAndItsOwnOutAndResumesWithItsTeachers) {
  const std::string dir = temp_dir("refuses");
  CliRun r = run(kSmall + "--max-steps 10 --out " + dir + "/teacher");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("train --task dates --hidden 16 --embedding 8 --attention-dim 8 --dates-train 20 --max-steps 1 --out " + dir +
          "/other");
  ASSERT_EQ(r.code, 0) << r.output;

  r = run(kSmall + "--max-steps 1 --teacher " + dir + "/other --out " + dir + "/bad");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--teacher " + dir +
                          "/other: its source vocabulary (37 tokens) is not the one this "
                          "run's training data gives (41 tokens)"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(dir + "/bad/model.safetensors"));
  r = run(kSmall + "--max-steps 1 --teacher " + dir + "/teacher --overwrite --out " + dir + "/teacher");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("is the --out directory"), std::string::npos) << r.output;
  r = run(kSmall + "--max-steps 1 --teacher " + dir + "/teacher --teacher-weight 1.5 --out " + dir + "/bad");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--teacher-weight"), std::string::npos) << r.output;

  r = run(kSmall + "--max-steps 3 --save-every 1 --teacher " + dir + "/teacher --teacher-weight 0.25 --out " + dir +
          "/student");
  ASSERT_EQ(r.code, 0) << r.output;
  const attend::TrainOptions saved = attend::load_train_options(dir + "/student");
  ASSERT_EQ(saved.teachers.size(), 1u);
  EXPECT_EQ(fs::path(saved.teachers[0]), fs::absolute(dir + "/teacher").lexically_normal());
  EXPECT_FLOAT_EQ(saved.teacher_weight, 0.25f);
  r = run("train --resume " + dir + "/student --teacher " + dir + "/teacher");
  EXPECT_EQ(r.code, 2) << r.output;
  // The teacher replaced by another model since: the student's run cannot continue as the same run.
  r = run(kSmall + "--max-steps 12 --overwrite --out " + dir + "/teacher");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("train --resume " + dir + "/student --max-steps 6");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("--teacher " + dir + "/teacher is not the model the run started with"), std::string::npos)
      << r.output;
  fs::remove_all(dir);
}

}  // namespace
