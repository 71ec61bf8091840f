// Reliability of attend train: a run killed at a random step (SIGKILL, no chance to clean up) and
// resumed ends with the same bytes as a run that was never interrupted; SIGINT/SIGTERM save and
// exit with a message; a diverging run stops naming the step and writes nothing; --init-from
// starts a new run from a model's weights or refuses the model.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "attend/io/files.h"
#include "attend/io/safetensors.h"
#include "cli_run.h"
#include "temp_dir.h"
#include "attend/train/trainer.h"

namespace {

namespace fs = std::filesystem;

using attend::testing::CliRun;
using attend::testing::run;

std::string temp_dir(const std::string& name) { return attend::testing::fresh_temp_dir("resume", name); }

// The step recorded in a run's training state, or -1 while there is none. The file is replaced
// by rename, so a read sees an old state or a new one.
int64_t saved_step(const std::string& dir) {
  std::map<std::string, std::string> metadata;
  try {
    const std::string path = dir + "/" + attend::kTrainStateFile;
    attend::parse_safetensors(attend::read_file(path), path, &metadata);
  } catch (const std::runtime_error&) {
    return -1;
  }
  return nlohmann::json::parse(metadata.at("attend.train_state"))["step"].get<int64_t>();
}

// Starts `attend train ARGS --out DIR` and sends `sig` once its saved state has reached `step`.
// Returns the wait status; the run must not have finished by itself.
int interrupt_at(const std::string& args, const std::string& dir, int64_t step, int sig) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string log = dir + ".log";
    std::freopen(log.c_str(), "w", stdout);
    std::freopen(log.c_str(), "a", stderr);
    const std::string cmd = std::string(ATTEND_CLI) + " train " + args + " --out " + dir;
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  while (true) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;  // finished before `step`: the caller fails
    if (saved_step(dir) >= step) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ::kill(pid, sig);
  ::waitpid(pid, &status, 0);
  return status;
}

// A small dates run: ~560 steps of about a millisecond each, state saved every 7 steps.
const std::string kRun =
    "--task dates --dates-train 3000 --hidden 48 --embedding 16 --attention-dim 16 --epochs 3 --batch 16 "
    "--save-every 7 --seed 5";

TEST(Resume, SigkillAtARandomStepThenResumeGivesTheSameBytes) {
  const std::string dir = temp_dir("kill");
  CliRun full = run("train " + kRun + " --out " + dir + "/full");
  ASSERT_EQ(full.code, 0) << full.output;
  const std::string expected = attend::read_file(dir + "/full/model.safetensors");

  std::random_device rd;
  const int64_t kill_step = 10 + static_cast<int64_t>(rd() % 500);  // printed so a failure can be replayed
  SCOPED_TRACE("killed once the saved state reached step " + std::to_string(kill_step));
  const int status = interrupt_at(kRun, dir + "/part", kill_step, SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the run ended by itself, status " << status;
  CliRun resumed = run("train --resume " + dir + "/part");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming at step"), std::string::npos) << resumed.output;
  EXPECT_EQ(attend::read_file(dir + "/part/model.safetensors"), expected);
  EXPECT_EQ(attend::read_file(dir + "/part/config.json"), attend::read_file(dir + "/full/config.json"));

  // A finished run has nothing left to resume.
  CliRun again = run("train --resume " + dir + "/part");
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.output.find("finished"), std::string::npos) << again.output;
  fs::remove_all(dir);
}

// The training state is the model's parameters and Adam's moments, whatever the architecture.
TEST(Resume, TransformerKilledAndResumedGivesTheSameBytes) {
  const std::string dir = temp_dir("kill_transformer");
  const std::string run_flags =
      "--model transformer --task dates --dates-train 1500 --dim 16 --heads 2 --ffn 32 "
      "--layers 1 --epochs 2 --batch 16 --save-every 7 --seed 6";
  CliRun full = run("train " + run_flags + " --out " + dir + "/full");
  ASSERT_EQ(full.code, 0) << full.output;
  const int status = interrupt_at(run_flags, dir + "/part", 100, SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the run ended by itself, status " << status;
  CliRun resumed = run("train --resume " + dir + "/part");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_EQ(attend::read_file(dir + "/part/model.safetensors"), attend::read_file(dir + "/full/model.safetensors"));
  EXPECT_EQ(attend::read_file(dir + "/part/config.json"), attend::read_file(dir + "/full/config.json"));
  fs::remove_all(dir);
}

TEST(Resume, SigintAndSigtermSaveTheStateAndExitWithAMessage) {
  const std::string dir = temp_dir("signal");
  CliRun full = run("train " + kRun + " --out " + dir + "/full");
  ASSERT_EQ(full.code, 0) << full.output;
  for (int sig : {SIGINT, SIGTERM}) {
    const std::string part = dir + "/part" + std::to_string(sig);
    const int status = interrupt_at(kRun, part, 100, sig);
    ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig);
    const std::string log = attend::read_file(part + ".log");
    EXPECT_NE(log.find(sig == SIGINT ? "interrupted (SIGINT)" : "terminated (SIGTERM)"), std::string::npos) << log;
    EXPECT_NE(log.find("attend train --resume " + part), std::string::npos) << log;
    CliRun resumed = run("train --resume " + part);
    ASSERT_EQ(resumed.code, 0) << resumed.output;
    EXPECT_EQ(attend::read_file(part + "/model.safetensors"), attend::read_file(dir + "/full/model.safetensors"));
  }
  fs::remove_all(dir);
}

TEST(Resume, RefusesChangedSettingsAndMissingState) {
  const std::string dir = temp_dir("refuse");
  CliRun r = run("train --resume " + dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("no training state"), std::string::npos) << r.output;
  r = run("train --resume " + dir + " --lr 0.1");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--lr"), std::string::npos) << r.output;
  r = run("train --resume " + dir + " --out " + dir);
  EXPECT_EQ(r.code, 2) << r.output;

  // Through the library, a resume with other settings names what changed.
  const int status = interrupt_at(kRun, dir + "/part", 20, SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(status));
  attend::TrainOptions o = attend::load_train_options(dir + "/part");
  EXPECT_EQ(o.seed, 5u);
  EXPECT_EQ(o.model.rnn.hidden, 48);
  o.resume = true;
  o.batch = 8;
  try {
    attend::Trainer(o).run();
    ADD_FAILURE() << "resumed with a different batch size";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("batch (was 16, now 8)"), std::string::npos) << e.what();
  }
  // A damaged state is a clear error naming the file.
  const std::string state = dir + "/part/" + attend::kTrainStateFile;
  const std::string bytes = attend::read_file(state);
  attend::write_file_atomic(state, bytes.substr(0, bytes.size() / 2));
  r = run("train --resume " + dir + "/part");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find(attend::kTrainStateFile), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

TEST(NonFinite, DivergingRunStopsNamingTheStepAndKeepsTheGoodCheckpoint) {
  const std::string dir = temp_dir("nan");
  CliRun good =
      run("train --task dates --dates-train 300 --hidden 16 --embedding 8 --attention-dim 8 --epochs 1 --out " + dir);
  ASSERT_EQ(good.code, 0) << good.output;
  const std::string before = attend::read_file(dir + "/model.safetensors");
  // A learning rate of 1e38 overflows the weights on the first updates: every later loss is NaN.
  CliRun bad =
      run("train --task dates --dates-train 300 --hidden 16 --embedding 8 --attention-dim 8 --epochs 1 "
          "--batch 16 --lr 1e38 --clip 0 --max-nonfinite 3 --overwrite --out " +
          dir);
  EXPECT_EQ(bad.code, 1) << bad.output;
  EXPECT_NE(bad.output.find("non-finite loss; update skipped, learning rate halved"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("training diverged: 3 consecutive non-finite steps, the last at step"), std::string::npos)
      << bad.output;
  EXPECT_EQ(attend::read_file(dir + "/model.safetensors"), before);
  fs::remove_all(dir);
}

// --lr-patience N halves the learning rate after N evaluations in a row without a better dev
// score and again after as many more; 0 never does; runs saved before it halve at every one.
// A learning rate of 1e-30 leaves the weights as they are, so every evaluation after the first
// is a stall.
TEST(LrPatience, HalvesAfterThatManyStallsOrNeverAndMayChangeOnResume) {
  const std::string dir = temp_dir("lr_patience");
  auto lr_by_eval = [&](const std::string& flag) {
    CliRun r =
        run("train --task dates --dates-train 300 --hidden 16 --embedding 8 --attention-dim 8 --batch 16 "
            "--lr 1e-30 --schedule constant --warmup 0 --epochs 10 --eval-every 5 --max-steps 40 --patience 100 "
            "--overwrite --out " +
            dir + " " + flag);
    EXPECT_EQ(r.code, 0) << r.output;
    std::vector<double> lr;
    std::istringstream lines(attend::read_file(dir + "/metrics.jsonl"));
    for (std::string line; std::getline(lines, line);)
      lr.push_back(nlohmann::json::parse(line)["lr"].get<double>() / 1e-30);
    return lr;
  };
  auto near = [](const std::vector<double>& got, const std::vector<double>& want) {
    if (got.size() != want.size()) return false;
    for (size_t i = 0; i < got.size(); ++i)
      if (std::fabs(got[i] - want[i]) > 1e-5 * want[i]) return false;
    return true;
  };
  const std::vector<double> every = lr_by_eval(""), two = lr_by_eval("--lr-patience 2"),
                            never = lr_by_eval("--lr-patience 0");
  EXPECT_TRUE(near(every, {1, 1, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625})) << ::testing::PrintToString(every);
  EXPECT_TRUE(near(two, {1, 1, 1, 0.5, 0.5, 0.25, 0.25, 0.125})) << ::testing::PrintToString(two);
  EXPECT_TRUE(near(never, std::vector<double>(8, 1.0))) << ::testing::PrintToString(never);
  CliRun bad = run("train --task dates --lr-patience -1 --out " + dir);
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.output.find("--lr-patience"), std::string::npos) << bad.output;

  // The plateau rule may change on resume (a run that halves on noise can be let run): stopped
  // after 4 evaluations (halved at the 2nd, 3rd and 4th; each rate is the one that led up to its
  // evaluation), resumed with --lr-patience 0, the rate stays where the 4th left it.
  CliRun part =
      run("train --task dates --dates-train 300 --hidden 16 --embedding 8 --attention-dim 8 --batch 16 --lr 1e-30 "
          "--schedule constant --warmup 0 --epochs 10 --eval-every 5 --max-steps 20 --patience 100 --overwrite --out " +
          dir);
  ASSERT_EQ(part.code, 0) << part.output;
  CliRun resumed = run("train --resume " + dir + " --max-steps 40 --lr-patience 0 --patience 50");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  std::vector<double> lr;
  std::istringstream lines(attend::read_file(dir + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);)
    lr.push_back(nlohmann::json::parse(line)["lr"].get<double>() / 1e-30);
  EXPECT_TRUE(near(lr, {1, 1, 0.5, 0.25, 0.125, 0.125, 0.125, 0.125})) << ::testing::PrintToString(lr);
  const attend::TrainOptions saved = attend::load_train_options(dir);
  EXPECT_EQ(saved.lr_patience, 0);
  EXPECT_EQ(saved.patience, 50);
  fs::remove_all(dir);
}

// --cooldown takes the rate down over the last updates of --max-steps (each evaluation reports
// the rate of the update before it); a resumed run with a larger budget cools down again at the
// end of the new one, and says that its rate went back up.
TEST(Cooldown, EndsTheBudgetAndMovesWithItOnResume) {
  const std::string dir = temp_dir("cooldown");
  const std::string common =
      "train --task dates --dates-train 300 --hidden 16 --embedding 8 --attention-dim 8 --batch 16 --lr 1e-30 "
      "--schedule constant --warmup 0 --epochs 10 --eval-every 5 --patience 100 --lr-patience 0 --cooldown 10 ";
  CliRun part = run(common + "--max-steps 20 --out " + dir);
  ASSERT_EQ(part.code, 0) << part.output;
  CliRun resumed = run("train --resume " + dir + " --max-steps 40");
  ASSERT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("the learning rate of update 21 is 1e-30, not 0"), std::string::npos) << resumed.output;
  std::vector<double> lr;
  std::istringstream lines(attend::read_file(dir + "/metrics.jsonl"));
  for (std::string line; std::getline(lines, line);)
    lr.push_back(nlohmann::json::parse(line)["lr"].get<double>() / 1e-30);
  const std::vector<double> want = {1, 1, 0.6, 0.1, 1, 1, 0.6, 0.1};
  ASSERT_EQ(lr.size(), want.size()) << ::testing::PrintToString(lr);
  for (size_t i = 0; i < lr.size(); ++i) EXPECT_NEAR(lr[i], want[i], 1e-5) << i;
  CliRun longer = run(common + "--max-steps 5 --overwrite --out " + dir);
  EXPECT_NE(longer.code, 0);
  EXPECT_NE(longer.output.find("--cooldown must be in [0, --max-steps 5], got 10"), std::string::npos) << longer.output;
  fs::remove_all(dir);
}

// --init-from: a new run starts from a model's weights (exactly: a learning rate of 1e-30 leaves
// them as they are) with other settings, and refuses a model of other sizes, vocabularies or
// architecture, and its own --out.
TEST(InitFrom, StartsFromTheModelsWeightsAndRefusesAnotherModel) {
  const std::string dir = temp_dir("init_from");
  const std::string small = "train --task dates --hidden 16 --embedding 8 --attention-dim 8 --batch 16 ";
  CliRun r = run(small + "--dates-train 300 --max-steps 20 --out " + dir + "/a");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string still =
      "--dates-train 300 --dropout 0 --lr 1e-30 --schedule constant --max-steps 1 --eval-every 1 ";
  r = run(small + still + "--init-from " + dir + "/a --out " + dir + "/b");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("starting from the weights of " + dir + "/a"), std::string::npos) << r.output;
  r = run(small + still + "--out " + dir + "/c");  // the same run from its own initialisation
  ASSERT_EQ(r.code, 0) << r.output;
  const auto a = attend::load_safetensors(dir + "/a/model.safetensors"),
             b = attend::load_safetensors(dir + "/b/model.safetensors"),
             c = attend::load_safetensors(dir + "/c/model.safetensors");
  ASSERT_EQ(a.size(), b.size());
  bool c_same = true;
  for (const auto& [name, t] : a) {
    EXPECT_EQ(t.to_vector(), b.at(name).to_vector()) << name;
    c_same = c_same && t.to_vector() == c.at(name).to_vector();
  }
  EXPECT_FALSE(c_same) << "a run without --init-from started from the same weights";

  const std::string transformer = "train --task dates --model transformer --dim 16 --heads 2 --ffn 16 --layers 1 ";
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"train --task dates --hidden 24 --embedding 8 --attention-dim 8 --batch 16 --dates-train 300",
       "this run's model has 'encoder.fwd.w_ih' [8, 36], the starting model has [8, 24]"},
      {transformer + "--dates-train 300", "the starting model's architecture is rnn; this run trains transformer"},
      {small + "--dates-train 20",
       "its source vocabulary (41 tokens) is not the one this run's training data gives (37 tokens)"},
  };
  for (const auto& [command, says] : refused) {
    r = run(command + " --init-from " + dir + "/a --max-steps 1 --out " + dir + "/d");
    EXPECT_EQ(r.code, 2) << command;
    EXPECT_NE(r.output.find(says), std::string::npos) << command << ": " << r.output;
    EXPECT_FALSE(fs::exists(dir + "/d/config.json")) << command;
  }
  // A Transformer may add relative positions to a model without them (the tables start at
  // zero, where they change nothing), not take them away.
  r = run(transformer + "--dates-train 300 --max-steps 2 --out " + dir + "/t");
  ASSERT_EQ(r.code, 0) << r.output;
  r = run(transformer + still + "--relative-positions 4 --decoder-relative-positions 3 --init-from " + dir +
          "/t --out " + dir + "/tr");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(2 relative-position tables it lacks start at zero)"), std::string::npos) << r.output;
  const auto added = attend::load_safetensors(dir + "/tr/model.safetensors");
  EXPECT_EQ(added.size(), attend::load_safetensors(dir + "/t/model.safetensors").size() + 2);
  EXPECT_EQ(added.at("decoder.0.self_attn.relative_bias").shape(), (attend::Shape{2, 7})) << "heads x (2K+1)";
  r = run(transformer + still + "--init-from " + dir + "/tr --out " + dir + "/d");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("the starting model has 52 weights, this run's 50"), std::string::npos) << r.output;
  r = run(small + "--dates-train 300 --init-from " + dir + "/a --overwrite --out " + dir + "/a");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("is the --out directory"), std::string::npos) << r.output;
  EXPECT_EQ(attend::load_safetensors(dir + "/a/model.safetensors").at("decoder.w_ih").to_vector(),
            a.at("decoder.w_ih").to_vector());
  r = run("train --resume " + dir + "/a --init-from " + dir + "/b");
  EXPECT_EQ(r.code, 2) << r.output;
  fs::remove_all(dir);
}

}  // namespace
