// attend train --teacher: token-level knowledge distillation from trained models.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>

#include "attend/autograd/variable.h"
#include "attend/io/files.h"
#include "attend/io/safetensors.h"
#include "attend/models/translator.h"
#include "attend/ops/softmax.h"
#include "attend/random.h"
#include "attend/train/communicator.h"
#include "attend/train/teacher_cache.h"
#include "attend/train/trainer.h"
#include "cli_run.h"
#include "temp_dir.h"

namespace {

namespace fs = std::filesystem;

using attend::testing::CliRun;
using attend::testing::run;

std::string temp_dir(const std::string& name) { return attend::testing::fresh_temp_dir("distill", name); }

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
  // The teachers' settings without a teacher are refused, not ignored.
  for (const char* flag : {"--teacher-weight 0.5", "--teacher-top-k 8"}) {
    r = run(kSmall + "--max-steps 1 " + flag + " --out " + dir + "/bad");
    EXPECT_EQ(r.code, 2) << flag << r.output;
    EXPECT_NE(r.output.find("requires --teacher"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir + "/bad/model.safetensors"));
  }

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

// `n` examples with random lengths (1-12 source, 1-10 target tokens) over vocabularies of the given sizes.
std::vector<attend::EncodedExample> random_examples(int n, int source_vocab, int target_vocab, uint64_t seed) {
  attend::Rng rng(seed);
  std::vector<attend::EncodedExample> set(static_cast<size_t>(n));
  for (auto& e : set) {
    e.src.resize(1 + rng.below(12));
    e.tgt.resize(1 + rng.below(10));
    for (int& id : e.src) id = 4 + static_cast<int>(rng.below(uint64_t(source_vocab - 4)));
    for (int& id : e.tgt) id = 4 + static_cast<int>(rng.below(uint64_t(target_vocab - 4)));
  }
  return set;
}

// The cache returns, for any batch, the rows the teachers give each of its examples: by the
// example's first source token and the step, with a synthetic teacher that writes them into its
// rows; zeros at padding; one row per target token and </s> in bytes().
TEST(TeacherCache, ReturnsEachExamplesRowsInAnyBatch) {
  const int64_t V = 5;
  const auto set = random_examples(300, 40, 9, 1);
  // Row (t, b) = [src0, t, V, B, 1]: B (the batch's size) shows which batch computed the row.
  int calls = 0;
  auto teacher = [&](const attend::Batch& b) {
    ++calls;
    attend::Tensor p = attend::Tensor::zeros(attend::Shape{int64_t(b.T) * b.B, V});
    for (int t = 0; t < b.T; ++t)
      for (int i = 0; i < b.B; ++i) {
        float* row = p.data() + (int64_t(t) * b.B + i) * V;
        row[0] = float(b.src[i]), row[1] = float(t), row[2] = float(V), row[3] = float(b.B), row[4] = 1.0f;
      }
    return p;
  };
  const attend::TeacherCache cache(set, V, teacher, attend::Communicator::world(), {}, 64);
  const auto chunks = attend::make_batches(set, 64, nullptr);
  EXPECT_EQ(calls, int(chunks.size()));
  std::vector<int> chunk_size(set.size());
  for (const auto& c : chunks)
    for (int i : c) chunk_size[size_t(i)] = int(c.size());
  int64_t rows = 0;
  for (const auto& e : set) rows += int64_t(e.tgt.size()) + 1;
  EXPECT_EQ(attend::TeacherCache::bytes(set, V), rows * V * 4);

  attend::Rng rng(7);
  for (const auto& indices : attend::make_batches(set, 13, &rng)) {
    const attend::Batch batch = attend::make_batch(set, indices);
    const attend::Tensor got = cache.rows(batch);
    ASSERT_EQ(got.shape(), (attend::Shape{int64_t(batch.T) * batch.B, V}));
    for (int t = 0; t < batch.T; ++t)
      for (int i = 0; i < batch.B; ++i) {
        const float* row = got.data() + (int64_t(t) * batch.B + i) * V;
        const auto& e = set[size_t(batch.index[i])];
        if (t > int(e.tgt.size())) {  // padding
          for (int64_t v = 0; v < V; ++v)
            ASSERT_EQ(row[v], 0.0f) << "padding row " << t << " of example " << batch.index[i];
          continue;
        }
        ASSERT_EQ(row[0], float(e.src[0])) << "step " << t << " of example " << batch.index[i];
        ASSERT_EQ(row[1], float(t));
        ASSERT_EQ(row[4], 1.0f);
        ASSERT_EQ(row[3], float(chunk_size[size_t(batch.index[i])]));  // computed in its chunk, not in this batch
      }
  }
  attend::Batch bad = attend::make_batch(set, {0});
  bad.index[0] = 300;
  EXPECT_THROW(cache.rows(bad), std::invalid_argument);
  auto wrong_shape = [&](const attend::Batch& b) { return attend::Tensor::zeros(attend::Shape{b.T, V}); };
  EXPECT_THROW(attend::TeacherCache(set, V, wrong_shape, attend::Communicator::world()), std::invalid_argument);
  EXPECT_THROW(attend::TeacherCache::bytes(set, 0), std::invalid_argument);
  // Asked after every chunk (one rank), it stops the computation at the first true.
  int asked = 0;
  calls = 0;
  EXPECT_THROW(attend::TeacherCache(
                   set, V, teacher, attend::Communicator::world(), [&] { return ++asked == 2; }, 64),
               attend::TeacherCache::Stopped);
  EXPECT_EQ(asked, 2);
  EXPECT_EQ(calls, 2);
}

// The ids of the k largest entries, largest first and the lower id first among equals, as a
// stable sort of all of them gives; keep_top_k renormalises those and zeroes the rest, leaves
// p alone for k = 0 or k >= V, and turns a row with a non-finite entry into NaN.
TEST(TeacherTopK, KeepsTheLargestRenormalisedAndTheLowerIdAmongEquals) {
  attend::Rng rng(4);
  for (int64_t V : {1, 5, 37})
    for (int k = 1; k <= V; ++k)
      for (int trial = 0; trial < 20; ++trial) {
        std::vector<float> row(static_cast<size_t>(V));
        for (float& x : row) x = float(rng.below(4)) / 4.0f;  // many ties
        std::vector<int32_t> want(row.size()), got(static_cast<size_t>(k));
        std::iota(want.begin(), want.end(), 0);
        std::stable_sort(want.begin(), want.end(), [&](int32_t a, int32_t b) { return row[a] > row[b]; });
        want.resize(static_cast<size_t>(k));
        attend::top_k_ids(row.data(), V, k, got.data());
        ASSERT_EQ(got, want) << "V " << V << " k " << k << " trial " << trial;
      }

  attend::Tensor p(attend::Shape{3, 5});
  const std::vector<float> rows = {0.1f, 0.3f, 0.2f, 0.2f, 0.2f,  //
                                   0.5f, 0.5f, 0.0f, 0.0f, 0.0f,  //
                                   0.2f, NAN,  0.2f, 0.3f, 0.3f};
  std::copy(rows.begin(), rows.end(), p.data());
  for (int k : {0, 5, 9}) {
    attend::Tensor same = p.clone();
    attend::keep_top_k(same, k);
    for (size_t i = 0; i < rows.size(); ++i)
      if (!std::isnan(rows[i])) {
        EXPECT_EQ(same.data()[i], rows[i]) << "k " << k << " entry " << i;
      }
  }
  attend::keep_top_k(p, 2);
  const std::vector<float> want = {0.0f, 0.3f / 0.5f, 0.2f / 0.5f, 0.0f, 0.0f, 0.5f, 0.5f, 0.0f, 0.0f, 0.0f};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(p.data()[i], want[i]) << "entry " << i;
  for (int v = 0; v < 5; ++v) EXPECT_TRUE(std::isnan(p.data()[10 + v])) << "the row with a NaN, entry " << v;
  attend::Tensor inf(attend::Shape{1, 3});
  inf.data()[0] = 0.5f, inf.data()[1] = INFINITY, inf.data()[2] = 0.5f;
  attend::keep_top_k(inf, 1);
  EXPECT_TRUE(std::isnan(inf.data()[0]) && std::isnan(inf.data()[1]) && std::isnan(inf.data()[2]));
}

// With top_k, the cache keeps each row's kept probabilities and their ids, and gives back the
// truncated rows the teacher gave, bit for bit, in 8 bytes per kept entry.
TEST(TeacherCache, TopKGivesBackTheTruncatedRowsBitForBit) {
  const int64_t V = 11;
  const int k = 3;
  const auto set = random_examples(150, 40, int(V), 5);
  // A distribution per (first source token, step), truncated as the trainer does.
  auto teacher = [&](const attend::Batch& b) {
    attend::Tensor p(attend::Shape{int64_t(b.T) * b.B, V});
    for (int t = 0; t < b.T; ++t)
      for (int i = 0; i < b.B; ++i) {
        float* row = p.data() + (int64_t(t) * b.B + i) * V;
        attend::Rng rng(uint64_t(b.src[i]) * 100 + uint64_t(t));
        float sum = 0.0f;
        for (int64_t v = 0; v < V; ++v) sum += row[v] = float(1 + rng.below(1000));
        for (int64_t v = 0; v < V; ++v) row[v] /= sum;
      }
    attend::keep_top_k(p, k);
    return p;
  };
  const attend::TeacherCache cache(set, V, teacher, attend::Communicator::world(), {}, 64, k);
  int64_t rows = 0;
  for (const auto& e : set) rows += int64_t(e.tgt.size()) + 1;
  EXPECT_EQ(attend::TeacherCache::bytes(set, V, k), rows * 2 * k * 4);
  EXPECT_EQ(attend::TeacherCache::bytes(set, V, int(V)), attend::TeacherCache::bytes(set, V, 0));
  EXPECT_THROW(attend::TeacherCache::bytes(set, V, -1), std::invalid_argument);
  attend::Rng rng(8);
  for (const auto& indices : attend::make_batches(set, 17, &rng)) {
    const attend::Batch batch = attend::make_batch(set, indices);
    const attend::Tensor want = teacher(batch), got = cache.rows(batch);
    for (int t = 0; t < batch.T; ++t)
      for (int i = 0; i < batch.B; ++i) {
        if (t > int(set[size_t(batch.index[i])].tgt.size())) continue;  // padding: zeros, unused
        const int64_t r = int64_t(t) * batch.B + i;
        for (int64_t v = 0; v < V; ++v)
          ASSERT_EQ(got.data()[r * V + v], want.data()[r * V + v]) << "example " << batch.index[i] << " step " << t;
      }
  }
}

// With a real model as the teacher, the cached rows are the probabilities computed for the batch
// itself, up to the rounding of other batch shapes.
TEST(TeacherCache, MatchesTheTeacherComputedBatchByBatch) {
  const std::string dir = temp_dir("cache_model");
  CliRun r =
      run("train --task dates --model transformer --dim 16 --heads 2 --ffn 16 --layers 1 --batch 32 --dates-train 200 "
          "--max-steps 30 --out " +
          dir + "/teacher");
  ASSERT_EQ(r.code, 0) << r.output;
  const attend::Translator t = attend::Translator::load(dir + "/teacher");
  const int64_t V = int64_t(t.target_vocab().size());
  auto probabilities = [&](const attend::Batch& b) {
    attend::NoGradScope no_grad;
    return attend::softmax(t.model().logits(b, nullptr)).value();
  };
  const auto set = random_examples(200, int(t.source_vocab().size()), int(V), 2);
  const attend::TeacherCache cache(set, V, probabilities, attend::Communicator::world(), {}, 64);
  attend::Rng rng(3);
  float worst = 0.0f;
  for (const auto& indices : attend::make_batches(set, 32, &rng)) {
    const attend::Batch batch = attend::make_batch(set, indices);
    const attend::Tensor want = probabilities(batch), got = cache.rows(batch);
    for (int t = 0; t < batch.T; ++t)
      for (int i = 0; i < batch.B; ++i) {
        if (t > int(set[size_t(batch.index[i])].tgt.size())) continue;
        for (int64_t v = 0; v < V; ++v) {
          const int64_t k = (int64_t(t) * batch.B + i) * V + v;
          worst = std::max(worst, std::abs(got.data()[k] - want.data()[k]));
        }
      }
  }
  EXPECT_LT(worst, 1e-5f);
  fs::remove_all(dir);
}

// A run with the cache says so and continues after an interruption to the same bytes as without
// one (the resumed run computes the cache again, chunk by chunk as the first did); a cache over
// its budget falls back to every batch, and --resume may change the budget.
TEST(Distill, CachedTeachersResumeToTheSameBytes) {
  const std::string dir = temp_dir("cached");
  CliRun r = run(kSmall + "--max-steps 10 --out " + dir + "/teacher");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string student = kSmall + "--teacher " + dir + "/teacher --save-every 1 ";
  r = run(student + "--max-steps 6 --out " + dir + "/whole");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("the teachers' probabilities of 300 training examples computed once"), std::string::npos)
      << r.output;
  r = run(student + "--max-steps 3 --out " + dir + "/part");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run("train --resume " + dir + "/part --max-steps 6");
  ASSERT_EQ(r.code, 0) << r.output;
  // The weights and Adam's moments (model.safetensors is the best model by dev, not the last).
  const auto whole = attend::load_safetensors(dir + "/whole/train_state.safetensors"),
             part = attend::load_safetensors(dir + "/part/train_state.safetensors");
  for (const auto& [name, t] : whole) EXPECT_EQ(t.to_vector(), part.at(name).to_vector()) << name;

  r = run(student + "--max-steps 2 --teacher-cache-mb 0 --out " + dir + "/uncached");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(--teacher-cache-mb 0): computed for every batch"), std::string::npos) << r.output;
  r = run("train --resume " + dir + "/uncached --max-steps 3 --teacher-cache-mb 100");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("computed once"), std::string::npos) << r.output;
  EXPECT_EQ(attend::load_train_options(dir + "/uncached").teacher_cache_mb, 100);
  r = run(student + "--max-steps 1 --teacher-cache-mb -1 --out " + dir + "/bad");
  EXPECT_EQ(r.code, 2) << r.output;

  // --teacher-top-k: k >= V is the whole distribution, bit for bit; k = 1 teaches something else;
  // it is a setting of the run (saved, not to be changed by --resume) and bounded.
  r = run(student + "--max-steps 3 --teacher-weight 1 --out " + dir + "/all");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run(student + "--max-steps 3 --teacher-weight 1 --teacher-top-k 1024 --out " + dir + "/top1024");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run(student + "--max-steps 3 --teacher-weight 1 --teacher-top-k 1 --out " + dir + "/top1");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("weight 1, their 1 most probable tokens"), std::string::npos) << r.output;
  const auto all = attend::load_safetensors(dir + "/all/train_state.safetensors"),
             top1024 = attend::load_safetensors(dir + "/top1024/train_state.safetensors"),
             top1 = attend::load_safetensors(dir + "/top1/train_state.safetensors");
  bool differs = false;
  for (const auto& [name, t] : all) {
    EXPECT_EQ(t.to_vector(), top1024.at(name).to_vector()) << name;
    differs = differs || t.to_vector() != top1.at(name).to_vector();
  }
  EXPECT_TRUE(differs) << "the teacher's most probable token alone taught what its whole distribution did";
  EXPECT_EQ(attend::load_train_options(dir + "/top1").teacher_top_k, 1);
  r = run("train --resume " + dir + "/top1 --max-steps 4 --teacher-top-k 2");
  EXPECT_EQ(r.code, 2) << r.output;
  r = run(student + "--max-steps 1 --teacher-top-k 1025 --out " + dir + "/bad");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--teacher-top-k"), std::string::npos) << r.output;

  // A stop (SIGINT, SIGTERM) while the cache is computed ends the run at once, its state as it was.
  const std::string state = dir + "/part/" + attend::kTrainStateFile, before = attend::read_file(state);
  attend::TrainOptions o = attend::load_train_options(dir + "/part");
  o.resume = true, o.max_steps = 9;
  const attend::TrainResult stopped = attend::Trainer(o, {.should_stop = [] { return true; }}).run();
  EXPECT_TRUE(stopped.interrupted);
  EXPECT_EQ(stopped.steps, 6);
  EXPECT_EQ(stopped.stop_reason, "interrupted while computing the teachers' probabilities");
  EXPECT_EQ(attend::read_file(state), before);
  r = run("train --resume " + dir + "/part --max-steps 9");
  EXPECT_EQ(r.code, 0) << r.output;
  fs::remove_all(dir);
}

}  // namespace
