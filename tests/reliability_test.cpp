// Reliability II (docs/reliability.md): nothing lost, nothing silently wrong. A model directory is
// replaced as one unit whatever is killed when; one run per directory; every write checked;
// hostile files, integers and data are clear errors naming the file, line and value.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "attend/attention/attention.h"
#include "attend/data/tsv.h"
#include "attend/data/utf8.h"
#include "attend/io/checkpoint.h"
#include "attend/io/files.h"
#include "attend/io/safetensors.h"
#include "attend/models/translator.h"
#include "attend/nn/init.h"
#include "attend/ops/kv_cache.h"
#include "attend/ops/sdpa.h"
#include "attend/ops/softmax.h"
#include "attend/threads.h"
#include "attend/train/trainer.h"
#include "cli_run.h"
#include "temp_dir.h"

namespace attend {
namespace {

namespace fs = std::filesystem;
using testing::CliRun;
using testing::run;

std::string temp_dir(const std::string& name) { return attend::testing::fresh_temp_dir("rel", name); }

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Runs a shell command line: exit code and stdout + stderr.
CliRun shell(const std::string& cmd) {
  FILE* p = ::popen(("(" + cmd + ") 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// A small copy task in DIR/train.tsv and DIR/dev.tsv; returns the --task tsv flags for it.
std::string tiny_data(const std::string& dir) {
  std::string train;
  for (int rep = 0; rep < 4; ++rep)
    for (const char* w : {"ab", "ba", "abc", "cab", "bca", "aab", "cc", "acb"})
      train += std::string(w) + "\t" + w + w + "\n";
  write_text(dir + "/train.tsv", train);
  write_text(dir + "/dev.tsv", "ab\tabab\ncab\tcabcab\n");
  return "--task tsv --train " + dir + "/train.tsv --dev " + dir +
         "/dev.tsv --hidden 8 --embedding 4 --attention-dim 4 ";
}

// A small model whose weights differ by seed.
Translator small_model(uint64_t seed) {
  Rng rng(seed);
  Vocab sv, tv;
  for (const char* t : {"a", "b", "c"}) sv.add(t), tv.add(t);
  ModelConfig mc;
  mc.rnn.hidden = 8, mc.rnn.embedding = 4, mc.rnn.attention.attention_dim = 4;
  mc.set_vocabularies(sv.size(), tv.size());
  const Tokenizer chars{Tokenizer::Kind::kChar, false, false};
  return Translator(mc.build(rng), chars, chars, sv, tv);
}

std::vector<float> first_weights(const Translator& t) { return t.model().parameters()[0].var.value().to_vector(); }

// ---- 1. A model directory is one unit -----------------------------------------------------

// Kills (SIGKILL) a save of model B over model A at each of its file-system steps in turn, and
// loads the directory after each: it must hold A or B whole, never a mix and never nothing.
TEST(Checkpoint, KilledAtEveryStepTheDirectoryHoldsTheOldOrTheNewModel) {
  const std::string dir = temp_dir("kill");
  const Translator a = small_model(1), b = small_model(2);
  const std::vector<float> wa = first_weights(a), wb = first_weights(b);
  ASSERT_NE(wa, wb);
  int saw_old = 0, saw_new = 0;
  for (long step = 1;; ++step) {
    fs::remove_all(dir);
    a.save(dir);
    const pid_t pid = ::fork();
    if (pid == 0) {
      set_file_faults(step, 0);
      b.save(dir);
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    const std::vector<float> w = first_weights(Translator::load(dir));  // throws if torn
    EXPECT_TRUE(w == wa || w == wb) << "step " << step;
    (w == wa ? saw_old : saw_new)++;
    if (WIFEXITED(status)) break;  // the save ran past its last step: every step was tried
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "step " << step;
    ASSERT_LT(step, 200) << "the save never finished";
  }
  EXPECT_GT(saw_old, 3);  // killed before the commit point
  EXPECT_GT(saw_new, 3);  // killed after it: readers take the committed files
  // The next writer finishes what a kill left: a directory with no staging or commit left over.
  fs::remove_all(dir);
  a.save(dir);
  const pid_t pid = ::fork();
  if (pid == 0) {
    set_file_faults(30, 0);
    b.save(dir);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  recover_checkpoint(dir);
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string()[0] == '.', false) << e.path();
  fs::remove_all(dir);
}

// The same with failures (EIO) instead of kills: the save throws, naming the file, and the
// directory still loads as one of the two models.
TEST(Checkpoint, AFailedStepLeavesTheOldOrTheNewModel) {
  const std::string dir = temp_dir("fail");
  const Translator a = small_model(1), b = small_model(2);
  const std::vector<float> wa = first_weights(a), wb = first_weights(b);
  for (long step = 1;; ++step) {
    fs::remove_all(dir);
    a.save(dir);
    set_file_faults(0, step);
    bool threw = false;
    try {
      b.save(dir);
    } catch (const std::runtime_error& e) {
      threw = true;
      EXPECT_TRUE(contains(e.what(), dir)) << e.what();
      EXPECT_TRUE(contains(e.what(), "Input/output error")) << e.what();
    }
    set_file_faults(0, 0);
    const std::vector<float> w = first_weights(Translator::load(dir));
    EXPECT_TRUE(w == wa || w == wb) << "step " << step;
    if (!threw) break;
    ASSERT_LT(step, 200);
  }
  fs::remove_all(dir);
}

TEST(Checkpoint, AFileChangedAfterSavingIsNamedAndALegacyDirectoryStillLoads) {
  const std::string dir = temp_dir("manifest");
  small_model(3).save(dir);
  const std::string config = read_file(dir + "/config.json");
  write_text(dir + "/config.json", config + " ");
  try {
    Translator::load(dir);
    ADD_FAILURE() << "loaded a changed config.json";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), dir + "/config.json: does not match checkpoint.json")) << e.what();
  }
  write_text(dir + "/model.safetensors", read_file(dir + "/model.safetensors").substr(0, 100));
  fs::remove(dir + "/config.json");
  write_text(dir + "/config.json", config);
  try {
    Translator::load(dir);
    ADD_FAILURE() << "loaded a truncated model";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "model.safetensors: does not match checkpoint.json (100 bytes")) << e.what();
    EXPECT_TRUE(contains(e.what(), "truncated")) << e.what();
  }
  small_model(3).save(dir);
  fs::remove(dir + "/checkpoint.json");  // written before manifests existed
  EXPECT_EQ(first_weights(Translator::load(dir)), first_weights(small_model(3)));
  fs::remove_all(dir);
}

// ---- 1 and 8, end to end: attend train killed at every file-system step ----------------------

// A fresh run over an existing model (--overwrite), killed at each of its file-system steps. After
// every kill the directory loads as the old model or the new one, and --resume either finishes the
// run with exactly the bytes of an uninterrupted run, or says the old (finished) run has nothing
// to resume (the old run's, or the new one's once it has finished). Nothing else is allowed.
TEST(TrainKill, KilledAtEveryStepTheModelLoadsAndTheRunResumes) {
  const std::string dir = temp_dir("trainkill");
  const std::string args = "train " + tiny_data(dir) + "--epochs 2 --batch 8 --eval-every 3 --save-every 2 --seed 5 ";
  ASSERT_EQ(run(args + "--out " + dir + "/full").code, 0);
  const std::string old_args = "train " + tiny_data(dir) + "--epochs 2 --batch 8 --seed 6 ";
  ASSERT_EQ(run(old_args + "--out " + dir + "/old").code, 0);
  auto model_bytes = [](const std::string& d) {
    return std::string(CheckpointReader(d, {"model.safetensors"}).bytes("model.safetensors"));
  };
  const std::string want = model_bytes(dir + "/full"), old = model_bytes(dir + "/old");
  ASSERT_NE(want, old);
  int resumed = 0, finished_old = 0;
  for (long step = 1;; ++step) {
    const std::string d = dir + "/k";
    fs::remove_all(d);
    fs::copy(dir + "/old", d, fs::copy_options::recursive);
    const CliRun r = shell("ATTEND_FAULT_KILL_AT=" + std::to_string(step) + " " + std::string(ATTEND_CLI) + " " + args +
                           "--overwrite --out " + d + "; echo EXIT=$?");
    if (contains(r.output, "EXIT=0")) break;  // ran past its last step: every step was tried
    ASSERT_TRUE(contains(r.output, "EXIT=137")) << "step " << step << ": " << r.output;
    EXPECT_NO_THROW(Translator::load(d)) << "step " << step;  // whole: every file matches the manifest
    const CliRun again = run("train --resume " + d);
    if (again.code == 0) {
      ++resumed;
      EXPECT_TRUE(model_bytes(d) == want) << "step " << step << ": the resumed run differs from the uninterrupted one";
    } else {
      ++finished_old;
      EXPECT_TRUE(contains(again.output, "this run has finished")) << "step " << step << ": " << again.output;
      const std::string now = model_bytes(d);  // the old run's, or the new run's when it had finished
      EXPECT_TRUE(now == old || now == want) << "step " << step;
    }
    ASSERT_LT(step, 1000);
  }
  EXPECT_GT(resumed, 10);
  EXPECT_GT(finished_old, 0);
  fs::remove_all(dir);
}

// A fresh run killed during its first saves leaves a directory that either resumes or starts
// again with the same command (no --overwrite needed: there is no model in it yet).
TEST(TrainKill, AFreshRunKilledEarlyResumesOrRestartsCleanly) {
  const std::string dir = temp_dir("freshkill");
  const std::string args = "train " + tiny_data(dir) + "--epochs 1 --batch 8 ";
  ASSERT_EQ(run(args + "--out " + dir + "/full").code, 0);
  const std::string want = read_file(dir + "/full/model.safetensors");
  for (long step = 1; step <= 12; ++step) {
    const std::string d = dir + "/k";
    fs::remove_all(d);
    const CliRun r = shell("ATTEND_FAULT_KILL_AT=" + std::to_string(step) + " " + std::string(ATTEND_CLI) + " " + args +
                           "--out " + d + "; echo EXIT=$?");
    ASSERT_TRUE(contains(r.output, "EXIT=137")) << "step " << step << ": " << r.output;
    CliRun again = run("train --resume " + d);
    if (again.code != 0) {
      EXPECT_TRUE(contains(again.output, "no training state to resume") ||
                  contains(again.output, "Directory does not exist"))
          << "step " << step << ": " << again.output;
      again = run(args + "--out " + d);
    }
    EXPECT_EQ(again.code, 0) << "step " << step << ": " << again.output;
    EXPECT_TRUE(read_file(d + "/model.safetensors") == want) << "step " << step;
  }
  fs::remove_all(dir);
}

// ---- 2. One run per directory --------------------------------------------------------------

TEST(Lock, ASecondWriterFailsAtOnceNamingTheHolder) {
  const std::string dir = temp_dir("lock");
  {
    DirectoryLock held(dir);
    try {
      DirectoryLock second(dir);
      ADD_FAILURE() << "two locks on one directory";
    } catch (const std::runtime_error& e) {
      EXPECT_TRUE(contains(e.what(), "PID " + std::to_string(::getpid()))) << e.what();
    }
    const CliRun r = run("train --task dates --dates-train 50 --hidden 8 --epochs 1 --overwrite --out " + dir);
    EXPECT_EQ(r.code, 1) << r.output;
    EXPECT_TRUE(contains(r.output, dir + ": in use by another attend train (PID " + std::to_string(::getpid())))
        << r.output;
  }
  DirectoryLock again(dir);  // released with its holder
  fs::remove_all(dir);
}

TEST(Lock, ADirectoryWithAModelNeedsOverwriteOrResume) {
  const std::string dir = temp_dir("overwrite");
  const std::string args = "train --task dates --dates-train 60 --hidden 8 --embedding 4 --attention-dim 4 --epochs 1 ";
  ASSERT_EQ(run(args + "--out " + dir).code, 0);
  const std::string before = read_file(dir + "/model.safetensors");
  CliRun r = run(args + "--seed 9 --out " + dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, "already holds a model or a run")) << r.output;
  EXPECT_TRUE(contains(r.output, "--overwrite")) << r.output;
  EXPECT_EQ(read_file(dir + "/model.safetensors"), before);
  r = run(args + "--seed 9 --overwrite --out " + dir);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(read_file(dir + "/model.safetensors"), before);
  fs::remove_all(dir);
}

TEST(Lock, StaleTemporariesAreRemovedAndAnUnwritableOutFailsBeforeTraining) {
  const std::string dir = temp_dir("stale");
  write_text(dir + "/model.safetensors.tmp.999999", "left by a killed run");
  fs::create_directories(dir + "/.staging.999999");
  const std::string args = "train --task dates --dates-train 60 --hidden 8 --embedding 4 --attention-dim 4 --epochs 1 ";
  ASSERT_EQ(run(args + "--out " + dir).code, 0);
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors.tmp.999999"));
  EXPECT_FALSE(fs::exists(dir + "/.staging.999999"));
  write_text(dir + "/file", "x");
  const CliRun r = run(args + "--out " + dir + "/file/sub");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, dir + "/file/sub")) << r.output;
  EXPECT_FALSE(contains(r.output, "epoch")) << "trained before finding that --out cannot be written: " << r.output;
  fs::remove_all(dir);
}

// ---- 3. Every write checked ------------------------------------------------------------------

class Written : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = temp_dir("written");
    const CliRun r =
        run("train --task dates --dates-train 300 --hidden 16 --embedding 8 "
            "--attention-dim 8 --epochs 1 --out " +
            dir_ + "/m");
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  static std::string dir_;
};
std::string Written::dir_;

TEST_F(Written, AFullStdoutIsAnErrorForEveryCommand) {
  const std::string m = " --model " + dir_ + "/m";
  for (const std::string& cmd : std::vector<std::string>{"translate" + m + " 'the 3rd of march, 1999'",
                                                         "eval" + m + " --test " + dir_ + "/m/test.tsv",
                                                         "eval" + m + " --json --test " + dir_ + "/m/test.tsv",
                                                         "align" + m + " --format pharaoh 'the 3rd of march, 1999'"}) {
    const CliRun r = shell(std::string(ATTEND_CLI) + " " + cmd + " > /dev/full");
    EXPECT_EQ(r.code, 1) << cmd << ": " << r.output;
    EXPECT_TRUE(contains(r.output, "standard output: write failed")) << cmd << ": " << r.output;
  }
  // Many lines through stdin: stops with an error, not exit 0 with part of the output.
  std::string lines;
  for (int i = 0; i < 3000; ++i) lines += "the 3rd of march, 1999\n";
  write_text(dir_ + "/many.txt", lines);
  const CliRun r = shell(std::string(ATTEND_CLI) + " translate" + m + " < " + dir_ + "/many.txt > /dev/full");
  EXPECT_EQ(r.code, 1) << r.output;
}

// translate answers each line as it arrives: the output for the first line is there while the
// input is still open.
TEST_F(Written, TranslateStreamsItsInput) {
  int to_child[2], from_child[2];
  ASSERT_EQ(::pipe(to_child), 0);
  ASSERT_EQ(::pipe(from_child), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(to_child[0], 0), ::dup2(from_child[1], 1);
    ::close(to_child[1]), ::close(from_child[0]);
    ::execl(ATTEND_CLI, ATTEND_CLI, "translate", "--model", (dir_ + "/m").c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(to_child[0]), ::close(from_child[1]);
  const std::string line = "the 3rd of march, 1999\n";
  ASSERT_EQ(::write(to_child[1], line.data(), line.size()), static_cast<ssize_t>(line.size()));
  pollfd p{from_child[0], POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 60000), 1) << "no answer while stdin stays open";
  char buf[256];
  const ssize_t n = ::read(from_child[0], buf, sizeof buf);
  EXPECT_GT(n, 0);
  EXPECT_EQ(std::string(buf, std::max<ssize_t>(n, 0)).back(), '\n');
  ::close(to_child[1]);
  while (::read(from_child[0], buf, sizeof buf) > 0) {}
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::close(from_child[0]);
}

// One input that cannot be translated (over-long, invalid UTF-8) is an error on stderr naming its
// line and an empty output line; the others are translated; the exit code says something failed.
TEST_F(Written, ABadInputLineIsReportedAndTheOthersAreTranslated) {
  write_text(dir_ + "/in.txt", "11/25/26\n" + std::string(2 << 20, 'x') + "\nbad \xff byte\n11/25/26\n");
  const CliRun r = shell(std::string(ATTEND_CLI) + " translate --model " + dir_ + "/m < " + dir_ + "/in.txt 2> " +
                         dir_ + "/err.txt");
  EXPECT_EQ(r.code, 1);
  size_t lines = 0;
  for (char c : r.output) lines += c == '\n';
  EXPECT_EQ(lines, 4u) << r.output;
  EXPECT_EQ(r.output.substr(0, r.output.find('\n')),
            r.output.substr(r.output.rfind('\n', r.output.size() - 2) + 1, r.output.find('\n')));
  const std::string err = read_file(dir_ + "/err.txt");
  EXPECT_TRUE(contains(err, "stdin:2: line of 2097152 bytes is longer than the limit of 1048576")) << err;
  EXPECT_TRUE(contains(err, "stdin:3: invalid UTF-8 at byte 5 (0xff)")) << err;
  EXPECT_TRUE(contains(err, "2 of 4 inputs could not be translated")) << err;
}

// ---- 4 and 9. Integers from outside are bounded ----------------------------------------------

TEST_F(Written, HugeIntegersAreRefusedOrSaturated) {
  const std::string m = " --model " + dir_ + "/m ";
  // A window of 2^31 - 1 positions is "all of them", not an overflow.
  const CliRun wide = run("translate" + m + "--window-back 0 --window-forward 2147483647 'the 3rd of march, 1999'");
  const CliRun big = run("translate" + m + "--window-back 0 --window-forward 1000000 'the 3rd of march, 1999'");
  EXPECT_EQ(wide.code, 0) << wide.output;
  EXPECT_EQ(wide.output, big.output);
  for (const char* flag : {"--beam 1025", "--beam 2147483648", "--max-length 100000000", "--threads 100000",
                           "--window-forward 2147483648", "--threads -1"}) {
    const CliRun r = run("translate" + m + flag + " x");
    EXPECT_EQ(r.code, 2) << flag << ": " << r.output;
    EXPECT_TRUE(contains(r.output, "must be a whole number")) << flag << ": " << r.output;
  }
  const CliRun t = run("train --threads 100000 --out " + dir_ + "/t");
  EXPECT_EQ(t.code, 2);
  EXPECT_TRUE(contains(t.output, "--threads: must be a whole number in [1, " + std::to_string(max_threads()) + "]"))
      << t.output;
  EXPECT_THROW(set_threads(100000), std::invalid_argument);
  EXPECT_THROW(set_threads(0), std::invalid_argument);
  EXPECT_LE(max_threads(), 1024);
  DecodeOptions o;
  o.beam = 5000;
  EXPECT_THROW(o.validate(), std::invalid_argument);
}

// ---- weak spots: pictures, formats -------------------------------------------------------------

TEST_F(Written, AlignObeysFormatAndRefusesAGiantPicture) {
  const std::string m = " --model " + dir_ + "/m ";
  CliRun r = run("align" + m + "--format png --out " + dir_ + "/a.svg '11/25/26'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(read_file(dir_ + "/a.svg").substr(1, 3), "PNG");
  r = run("align" + m + "--format svg --out " + dir_ + "/b.png '11/25/26'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(read_file(dir_ + "/b.png"), "<svg"));
  r = run("align" + m + "--max-length 10 --out " + dir_ + "/c.png '" + std::string(3000, '1') + "'");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "more than the limit of 16384 a side")) << r.output;
  EXPECT_FALSE(fs::exists(dir_ + "/c.png"));
}

// ---- 7. Files: kind, size, errors ---------------------------------------------------------------

TEST_F(Written, ModelFilesThatAreNotRegularFilesOrHaveTrailingBytesAreNamed) {
  auto copy_model = [&](const std::string& name) {
    const std::string d = dir_ + "/" + name;
    fs::remove_all(d);
    fs::copy(dir_ + "/m", d, fs::copy_options::recursive);
    fs::remove(d + "/checkpoint.json");  // the file checks themselves, not the manifest's
    fs::remove(d + "/model.safetensors");
    return d;
  };
  std::string d = copy_model("zero");
  fs::create_symlink("/dev/zero", d + "/model.safetensors");
  CliRun r = run("translate --model " + d + " x");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, "model.safetensors: is a character device, not a regular file")) << r.output;
  d = copy_model("fifo");
  ASSERT_EQ(::mkfifo((d + "/model.safetensors").c_str(), 0644), 0);
  r = run("translate --model " + d + " x");
  EXPECT_TRUE(contains(r.output, "model.safetensors: is a FIFO")) << r.output;
  d = copy_model("dir");
  fs::create_directories(d + "/model.safetensors");
  r = run("translate --model " + d + " x");
  EXPECT_TRUE(contains(r.output, "model.safetensors: is a directory")) << r.output;
  d = copy_model("trailing");
  write_text(d + "/model.safetensors", read_file(dir_ + "/m/model.safetensors") + "junk");
  r = run("translate --model " + d + " x");
  EXPECT_TRUE(contains(r.output, "4 trailing bytes after the last tensor")) << r.output;
  r = run("translate --model " + dir_ + "/m/config.json x");
  EXPECT_TRUE(contains(r.output, "not a directory")) << r.output;
}

TEST(Files, ReadErrorsSayWhy) {
  const std::string dir = temp_dir("files");
  try {
    read_file(dir);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "is a directory")) << e.what();
  }
  try {
    read_file(dir + "/missing");
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "No such file or directory")) << e.what();
  }
  fs::create_symlink(dir + "/loop", dir + "/loop");
  try {
    read_file(dir + "/loop");
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "Too many levels of symbolic links")) << e.what();
  }
  write_text(dir + "/big", std::string(1000, 'x'));
  try {
    read_file(dir + "/big", 999);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "1000 bytes is more than the limit of 999")) << e.what();
  }
  fs::remove_all(dir);
}

// Loading refuses NaN weights, unknown config fields (with the closest name) and newer versions.
TEST(Files, LoadingChecksWeightsAndConfigFields) {
  const std::string dir = temp_dir("fields");
  Translator t = small_model(4);
  t.model().parameters()[1].var.value().data()[2] = NAN;
  t.save(dir);
  try {
    Translator::load(dir);
    ADD_FAILURE() << "loaded NaN weights";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "element 2 is nan")) << e.what();
  }
  small_model(4).save(dir);
  fs::remove(dir + "/checkpoint.json");
  nlohmann::json c = nlohmann::json::parse(read_file(dir + "/config.json"));
  c["model"]["hiden"] = 8;
  write_text(dir + "/config.json", c.dump());
  try {
    Translator::load(dir);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "unknown field 'hiden' (did you mean 'hidden'?)")) << e.what();
  }
  c["model"].erase("hiden");
  c["version"] = 7;
  write_text(dir + "/config.json", c.dump());
  try {
    Translator::load(dir);
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "version 7 is not supported")) << e.what();
  }
  fs::remove_all(dir);
}

// ---- 8. Resume checks its data and its state -----------------------------------------------------

TEST(ResumeChecks, ChangedDataDamagedStateAndBudgets) {
  const std::string dir = temp_dir("resumechecks");
  const std::string args = "train " + tiny_data(dir) + "--epochs 50 --batch 2 --max-steps 3 --out " + dir + "/m";
  const std::string train = read_file(dir + "/train.tsv");
  ASSERT_EQ(run(args).code, 0);
  // A run that stopped on its budget continues with a larger one, and only with one.
  CliRun r = run("train --resume " + dir + "/m");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, "stopped on its budget")) << r.output;
  r = run("train --resume " + dir + "/m --max-steps 5");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "trained 5 steps")) << r.output;
  // Changed data: refused, naming the file.
  write_text(dir + "/train.tsv", train + "ca\tcaca\n");
  r = run("train --resume " + dir + "/m --max-steps 8");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, dir + "/train.tsv: changed since the run started")) << r.output;
  write_text(dir + "/train.tsv", train);
  // A damaged field, and a damaged tensor: both named.
  const std::string state = dir + "/m/" + kTrainStateFile;
  const std::string good = read_file(state);
  std::map<std::string, std::string> meta;
  std::map<std::string, Tensor> tensors = parse_safetensors(good, state, &meta);
  nlohmann::json j = nlohmann::json::parse(meta["attend.train_state"]);
  j["lr_scale"] = -1;
  std::vector<NamedParameter> named;
  for (auto& [name, t] : tensors) named.push_back({name, Var(t)});
  write_text(state, safetensors_bytes(named, {{"attend.train_state", j.dump()}}));
  r = run("train --resume " + dir + "/m --max-steps 8");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, "lr_scale must be finite and > 0, got -1")) << r.output;
  std::string flipped = good;
  flipped[flipped.size() - 3] ^= 0x40;
  write_text(state, flipped);
  r = run("train --resume " + dir + "/m --max-steps 8");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, "do not match the state's checksum")) << r.output;
  write_text(state, good);
  // The best model so far, which the resumed run keeps unless it finds a better one, is checked too.
  const std::string model = read_file(dir + "/m/model.safetensors");
  write_text(dir + "/m/model.safetensors", model.substr(0, model.size() - 8));
  r = run("train --resume " + dir + "/m --max-steps 8");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, "model.safetensors: does not match checkpoint.json")) << r.output;
  write_text(dir + "/m/model.safetensors", model);
  EXPECT_EQ(run("train --resume " + dir + "/m --max-steps 8").code, 0);
  fs::remove_all(dir);
}

// ---- 5. NaN never disappears -----------------------------------------------------------------

Tensor random_tensor(const Shape& shape, Rng& rng) {
  Tensor t(shape);
  init::uniform(t, 1.0f, rng);
  return t;
}

bool all_nan(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isnan(x[i])) return false;
  return true;
}

// A NaN in q, k, the bias or an ALiBi slope gives NaN in the rows it reaches, in the fused kernel,
// the reference and the decoding kernel alike; a fully masked row stays zeros with lse = -inf.
TEST(NonFiniteInputs, NanReachesTheOutputOfEverySdpaPath) {
  Rng rng(11);
  const int B = 1, H = 2, T = 3, S = 40, D = 8;
  for (const std::string& where : std::vector<std::string>{"q", "k", "bias", "alibi"}) {
    Tensor q = random_tensor(Shape{B, H, T, D}, rng), k = random_tensor(Shape{B, H, S, D}, rng);
    Tensor v = random_tensor(Shape{B, H, S, D}, rng), bias = random_tensor(Shape{1, H, T, S}, rng);
    SdpaOptions o;
    o.alibi_slopes = {0.5f, 0.25f};
    if (where == "q") q.data()[((0 * H + 1) * T + 2) * D + 3] = NAN;   // head 1, row 2
    if (where == "k") k.data()[((0 * H + 1) * S + 17) * D + 0] = NAN;  // head 1, key 17: every row
    if (where == "bias") bias.data()[(1 * T + 2) * S + 30] = NAN;      // head 1, row 2
    if (where == "alibi") o.alibi_slopes[1] = NAN;                     // head 1
    for (SdpaPath path : {SdpaPath::kFused, SdpaPath::kReference}) {
      o.path = path;
      const SdpaResult r = sdpa_forward(q, k, v, o, bias);
      const float* head1_row2 = r.out.data() + ((0 * H + 1) * T + 2) * D;
      EXPECT_TRUE(all_nan(head1_row2, D)) << where << (path == SdpaPath::kFused ? " fused" : " reference");
      EXPECT_TRUE(std::isnan(r.lse.data()[1 * T + 2])) << where;
      const float* head0_row0 = r.out.data();
      EXPECT_TRUE(std::isfinite(head0_row0[0])) << where << ": head 0 has no NaN input";
    }
  }
  // A fully masked row is zeros (not NaN), and the two are told apart by lse.
  Tensor q = random_tensor(Shape{B, H, T, D}, rng), k = random_tensor(Shape{B, H, S, D}, rng);
  SdpaOptions masked;
  masked.key_lengths = {0};
  const SdpaResult z = sdpa_forward(q, k, k, masked);
  EXPECT_EQ(z.out.data()[0], 0.0f);
  EXPECT_EQ(z.lse.data()[0], -INFINITY);
  // Decoding from a KV cache: one query, the same rule.
  KvCache cache(B, H, S, D);
  Tensor kn = random_tensor(Shape{B, H, S, D}, rng);
  kn.data()[5] = NAN;
  cache.append(kn, kn);
  Tensor q1 = random_tensor(Shape{B, H, 1, D}, rng);
  const Tensor out = sdpa_decode(q1, cache);
  EXPECT_TRUE(all_nan(out.data(), D));        // head 0 saw the NaN key
  EXPECT_TRUE(std::isfinite(out.data()[D]));  // head 1 did not
}

TEST(NonFiniteInputs, NanReachesTheWeightsOfEveryNormalizer) {
  for (Normalizer n : {Normalizer::kSoftmax, Normalizer::kSparsemax, Normalizer::kEntmax15}) {
    // Row 0: all NaN (a NaN query); row 1: one NaN; row 2: no NaN; all three unmasked.
    Tensor x = Tensor::from(Shape{3, 4}, {NAN, NAN, NAN, NAN, 0.5f, NAN, 1.0f, 2.0f, 0.5f, 0.1f, 1.0f, 2.0f});
    const Tensor w = normalize(Var(x), Tensor(), n).value();
    EXPECT_TRUE(all_nan(w.data(), 4)) << to_string(n);
    EXPECT_TRUE(all_nan(w.data() + 4, 4)) << to_string(n);
    float sum = 0.0f;
    for (int i = 8; i < 12; ++i) sum += w.data()[i];
    EXPECT_NEAR(sum, 1.0f, 1e-5f) << to_string(n);
    // NaN only where the mask forbids attending is no NaN at all; a fully masked row is zeros.
    Tensor m = Tensor::from(Shape{3, 4}, {0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1});
    const Tensor wm = normalize(Var(x), m, n).value();
    for (int i = 0; i < 4; ++i) EXPECT_EQ(wm.data()[i], 0.0f) << to_string(n);
    for (int i = 4; i < 12; ++i) EXPECT_TRUE(std::isfinite(wm.data()[i])) << to_string(n) << " " << i;
  }
  // The general mechanism: a NaN in the query gives NaN weights and context.
  Tensor q = Tensor::from(Shape{1, 1, 2}, {NAN, 1.0f}), k = Tensor::from(Shape{1, 3, 2}, {1, 0, 0, 1, 1, 1});
  const AttentionResult r = attend::attention(Var(q), Var(k), Var(k), Tensor(), ScoreKind::kDot);
  EXPECT_TRUE(all_nan(r.weights.value().data(), 3));
  EXPECT_TRUE(all_nan(r.context.value().data(), 2));
}

// ---- 6. Zero sizes ------------------------------------------------------------------------------

TEST(ZeroSizes, EmptyBatchOrQueriesGiveEmptyResultsOtherZerosAreNamed) {
  auto ones = [](std::initializer_list<int64_t> d) { return Var(Tensor::full(Shape(std::vector<int64_t>(d)), 1.0f)); };
  AttentionResult r = attend::attention(ones({0, 2, 4}), ones({0, 3, 4}), ones({0, 3, 5}), Tensor(), ScoreKind::kDot);
  EXPECT_EQ(r.context.shape(), (Shape{0, 2, 5}));
  EXPECT_EQ(r.weights.shape(), (Shape{0, 2, 3}));
  r = attend::attention(ones({1, 0, 4}), ones({1, 3, 4}), ones({1, 3, 5}), Tensor(), ScoreKind::kDot);
  EXPECT_EQ(r.context.shape(), (Shape{1, 0, 5}));
  const std::vector<std::pair<std::string, std::array<Var, 3>>> bad = {
      {"S (source positions", {ones({1, 2, 4}), ones({1, 0, 4}), ones({1, 0, 5})}},
      {"Dq (the query's feature size) is 0", {ones({1, 2, 0}), ones({1, 3, 0}), ones({1, 3, 5})}},
      {"Dv (the values' feature size) is 0", {ones({1, 2, 4}), ones({1, 3, 4}), ones({1, 3, 0})}}};
  for (const auto& [message, in] : bad) {
    try {
      attend::attention(in[0], in[1], in[2], Tensor(), ScoreKind::kDot);
      ADD_FAILURE() << message;
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), message)) << e.what();
    }
  }
}

// ---- weak spots: data ---------------------------------------------------------------------------

TEST(Data, Utf8BomAndWhiteSpaceSides) {
  EXPECT_EQ(utf8_error_offset("caf\xc3\xa9"), kValidUtf8);
  EXPECT_EQ(utf8_error_offset("ab\xc0\xaf"), 2u);        // overlong
  EXPECT_EQ(utf8_error_offset("\xed\xa0\x80"), 0u);      // surrogate
  EXPECT_EQ(utf8_error_offset("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(utf8_error_offset("x\xe2\x82"), 1u);         // cut short
  try {
    parse_tsv("a\tb\n\nok\tfine\nc\xff\td\n", "d.tsv");
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "d.tsv:4: invalid UTF-8 at byte 2 (0xff)")) << e.what();
  }
  const std::vector<Example> bom = parse_tsv(
      "\xef\xbb\xbf"
      "a\tb\n",
      "bom.tsv");
  ASSERT_EQ(bom.size(), 1u);
  EXPECT_EQ(bom[0].source, "a");
  try {
    parse_tsv("a\tb\n\n\n \t x\n", "w.tsv");
    ADD_FAILURE();
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "w.tsv:4: the source is only white space")) << e.what();
  }
  const std::string dir = temp_dir("utf8train");
  write_text(dir + "/t.tsv", "ab\tcd\nx\xfe\tz\n");
  const CliRun r = run("train --task tsv --train " + dir + "/t.tsv --dev " + dir + "/t.tsv --out " + dir + "/m");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(contains(r.output, "t.tsv:2: invalid UTF-8")) << r.output;
  EXPECT_FALSE(fs::exists(dir + "/m")) << "wrote before the data was checked";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace attend
