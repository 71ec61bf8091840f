// The attend command line: bad input gets a clear message and a non-zero exit, and nothing is lost.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <sstream>

#include "attend/cpu.h"
#include "attend/io/files.h"
#include "cli_run.h"

namespace {

using attend::testing::CliRun;
using attend::testing::run;

class Cli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (std::filesystem::temp_directory_path() / ("attend_cli_test_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir_);
    std::ofstream train(dir_ + "/train.tsv"), dev(dir_ + "/dev.tsv");
    const char* words[] = {"ab", "ba", "abc", "cab", "bca", "aab", "cc", "acb", "bac", "cba"};
    for (int rep = 0; rep < 20; ++rep)
      for (const char* w : words) train << w << '\t' << std::string(w).append(w) << '\n';
    for (const char* w : words) dev << w << '\t' << std::string(w).append(w) << '\n';
    train.close();
    dev.close();
    const CliRun r = run("train --task tsv --train " + dir_ + "/train.tsv --dev " + dir_ +
                         "/dev.tsv --hidden 16 --embedding 8 "
                         "--attention-dim 8 --epochs 2 --batch 8 --out " +
                         dir_ + "/model");
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::string dir_;
};
std::string Cli::dir_;

TEST_F(Cli, HelpIsCompleteForEverySubcommand) {
  for (const char* sub : {"train", "eval", "translate", "align", "score", "average"}) {
    CliRun r = run(std::string(sub) + " --help");
    EXPECT_EQ(r.code, 0) << sub;
    EXPECT_NE(r.output.find("--"), std::string::npos) << sub;
  }
  CliRun r = run("train --help");
  for (const char* flag : {"--task",        "--train",        "--dev",          "--attention",   "--score",
                           "--hidden",      "--batch",        "--epochs",       "--max-minutes", "--seed",
                           "--threads",     "--out",          "--train-source", "--tokenizer",   "--vocab-size",
                           "--joint-vocab", "--batch-tokens", "--accum",        "--metric",      "--keep-checkpoints",
                           "--ema"})
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
  r = run("translate --help");
  for (const char* flag : {"--n-best", "--with-scores", "--json", "--length-norm", "--coverage-penalty",
                           "--max-length-ratio", "--batch-tokens"})
    EXPECT_NE(r.output.find(flag), std::string::npos) << flag;
  r = run("data bible --help");
  EXPECT_NE(r.output.find("--pair"), std::string::npos) << r.output;
  EXPECT_EQ(run("").code, 2);
}

// ATTEND_CPU_ISA pins the vector kernels to any instruction set this CPU runs; one it does not
// is an error naming the variable, the value and the choices.
TEST_F(Cli, AttendCpuIsaPinsTheVectorKernels) {
  for (const std::string& isa : attend::cpu_isas()) {
    ::setenv("ATTEND_CPU_ISA", isa.c_str(), 1);
    const auto r = run("--version");
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_NE(r.output.find("vector kernels: " + isa + "\n"), std::string::npos) << r.output;
  }
  ::setenv("ATTEND_CPU_ISA", "avx1024", 1);
  const auto bad = run("--version");
  ::unsetenv("ATTEND_CPU_ISA");
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_NE(bad.output.find("ATTEND_CPU_ISA: set_cpu_isa: 'avx1024' is not"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find(attend::cpu_isas().front()), std::string::npos) << bad.output;
}

// attend score: sacrebleu's lines; files that do not pair up, or are not UTF-8, are named.
TEST_F(Cli, ScorePrintsBleuAndChrfWithSignaturesAndNamesBadFiles) {
  const std::string ref = dir_ + "/score.ref", hyp = dir_ + "/score.hyp", short_hyp = dir_ + "/score.short",
                    bad = dir_ + "/score.bad";
  std::ofstream(ref) << "the cat sat on a mat\n";
  std::ofstream(hyp) << "the cat sat on the mat\n";
  std::ofstream(short_hyp) << "";
  std::ofstream(bad) << "caf\xe9\n";
  CliRun r = run("score --ref " + ref + " --hyp " + hyp);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("BLEU|nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp = 53.73 83.3/60.0/50.0/33.3 (BP = 1.000"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("chrF2|nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no = "), std::string::npos) << r.output;
  r = run("score --json --ref " + ref + " --hyp " + hyp);
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"bleu\":53.728"), std::string::npos) << r.output;
  r = run("score --json --ref " + ref + " --hyp - < " + hyp);  // a pipe of translations, as sacrebleu takes
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"bleu\":53.728"), std::string::npos) << r.output;
  r = run("score --ref " + ref + " --hyp - < " + short_hyp);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("standard input has 0 lines but " + ref + " has 1"), std::string::npos) << r.output;
  r = run("score --ref - --hyp - < " + hyp);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot both be standard input"), std::string::npos) << r.output;
  r = run("score --ref " + ref + " --hyp " + short_hyp);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(short_hyp + " has 0 lines but " + ref + " has 1"), std::string::npos) << r.output;
  r = run("score --ref " + bad + " --hyp " + hyp);
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(bad + ":1: invalid UTF-8 at byte 4"), std::string::npos) << r.output;
}

// attend eval --keys: scores per book; a keys file that does not belong to --test is named
// before anything is decoded.
TEST_F(Cli, EvalScoresEachBookOfAKeysFile) {
  std::ofstream keys(dir_ + "/dev.keys"), short_keys(dir_ + "/short.keys");
  for (int i = 1; i <= 10; ++i) keys << (i <= 4 ? "Ruth 1:" : "Titus 2:") << i << "\n";
  for (int i = 1; i <= 9; ++i) short_keys << "Ruth 1:" << i << "\n";
  keys.close(), short_keys.close();
  const std::string eval = "eval --model " + dir_ + "/model --test " + dir_ + "/dev.tsv --keys ";
  CliRun r = run(eval + dir_ + "/dev.keys");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("by book (" + dir_ + "/dev.keys):\n  Ruth"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\n  Titus                      6 lines  BLEU"), std::string::npos) << r.output;
  r = run(eval + dir_ + "/dev.keys --json");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j.at("books").size(), 2u);
  EXPECT_EQ(j["books"][0]["book"], "Ruth");
  EXPECT_EQ(j["books"][0]["lines"], 4);
  r = run(eval + dir_ + "/short.keys");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(dir_ + "/short.keys names 9 verses but " + dir_ + "/dev.tsv has 10 lines"), std::string::npos)
      << r.output;
}

// Training data without --task is the TSV task (it used to train the dates task, exit 0);
// with --task dates it is an error; Moses-style parallel files train the same way.
TEST_F(Cli, TrainingDataImpliesTheTsvTaskAndParallelFilesWork) {
  const std::string small = " --hidden 8 --embedding 4 --attention-dim 4 --epochs 1 --batch 8 --overwrite --out ";
  CliRun r = run("train --train " + dir_ + "/train.tsv --dev " + dir_ + "/dev.tsv" + small + dir_ + "/implied");
  ASSERT_EQ(r.code, 0) << r.output;
  std::ifstream config(dir_ + "/implied/config.json");
  const std::string text((std::istreambuf_iterator<char>(config)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"task\": \"tsv\""), std::string::npos) << text.substr(0, 400);
  r = run("train --task dates --train " + dir_ + "/train.tsv --dev " + dir_ + "/dev.tsv --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--task dates generates its own data"), std::string::npos) << r.output;
  std::ofstream(dir_ + "/src.txt") << "ab\nba\nabc\n";
  std::ofstream(dir_ + "/tgt.txt") << "abab\nbaba\nabcabc\n";
  std::ofstream(dir_ + "/tgt_short.txt") << "abab\nbaba\n";
  const std::string moses = " --train-source " + dir_ + "/src.txt --dev-source " + dir_ + "/src.txt --dev-target " +
                            dir_ + "/tgt.txt --train-target ";
  r = run("train" + moses + dir_ + "/tgt.txt" + small + dir_ + "/moses");
  EXPECT_EQ(r.code, 0) << r.output;
  r = run("train" + moses + dir_ + "/tgt_short.txt" + small + dir_ + "/moses2");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find("src.txt has 3 lines but " + dir_ + "/tgt_short.txt has 2"), std::string::npos) << r.output;
  r = run("train --train-source " + dir_ + "/src.txt --dev " + dir_ + "/dev.tsv --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--train-source and --train-target go together"), std::string::npos) << r.output;
}

// n-best lists in Marian's format, scores, and one JSON object per input.
TEST_F(Cli, TranslatePrintsNBestListsScoresAndJson) {
  const std::string m = " --model " + dir_ + "/model ";
  CliRun r = run("translate" + m + "--beam 3 --n-best 2 ab ba");
  ASSERT_EQ(r.code, 0) << r.output;
  std::istringstream lines(r.output);
  std::vector<std::string> got;
  for (std::string line; std::getline(lines, line);) got.push_back(line);
  ASSERT_EQ(got.size(), 4u) << r.output;
  EXPECT_EQ(got[0].rfind("0 ||| ", 0), 0u) << got[0];
  EXPECT_EQ(got[2].rfind("1 ||| ", 0), 0u) << got[2];
  EXPECT_NE(got[1].find(" ||| F0= "), std::string::npos) << got[1];
  r = run("translate" + m + "--with-scores ab");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find(" ||| -"), std::string::npos) << r.output;
  r = run("translate" + m + "--json --beam 2 --n-best 2 ab");
  ASSERT_EQ(r.code, 0) << r.output;
  const nlohmann::json j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j.at("input"), "ab");
  EXPECT_EQ(j.at("nbest").size(), 2u);
  EXPECT_EQ(j.at("nbest")[0].at("output"), j.at("output"));
  r = run("translate" + m + "--beam 2 --n-best 3 ab");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--n-best 3 needs a beam at least as wide (--beam 2)"), std::string::npos) << r.output;
}

// The dev metric picks the best model: with --metric loss every evaluation records the
// teacher-forced dev loss and the saved model is the evaluation with the lowest.
TEST_F(Cli, DevMetricChoosesTheBestModel) {
  const std::string out = dir_ + "/by_loss";
  CliRun r = run("train --train " + dir_ + "/train.tsv --dev " + dir_ +
                 "/dev.tsv --hidden 8 --embedding 4 --attention-dim 4 --batch 8 --eval-every 5 --max-steps 40 "
                 "--patience 100 --metric loss --out " +
                 out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("best dev loss "), std::string::npos) << r.output;
  std::ifstream metrics(out + "/metrics.jsonl");
  double lowest = INFINITY, best_loss = NAN;
  int records = 0;
  for (std::string line; std::getline(metrics, line); ++records) {
    const nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j.at("metric"), "loss");
    const double loss = j.at("dev_loss");
    EXPECT_GT(loss, 0.0);
    EXPECT_EQ(j.at("best").get<bool>(), loss < lowest) << line;
    if (loss < lowest) lowest = loss, best_loss = loss;
  }
  EXPECT_EQ(records, 8);
  EXPECT_EQ(best_loss, lowest);
  r = run("train --train " + dir_ + "/train.tsv --dev " + dir_ + "/dev.tsv --metric bleu2 --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2) << r.output;
}

// Token-sized decoding batches change the grouping, not the outputs; an input longer than the
// budget is decoded alone.
TEST_F(Cli, TranslateInTokenSizedBatchesGivesTheSameOutputs) {
  const std::string inputs = " ab ba abc cab bca aab cc acb bac cba";
  const CliRun plain = run("translate --model " + dir_ + "/model" + inputs);
  ASSERT_EQ(plain.code, 0) << plain.output;
  for (const char* flags : {" --batch-tokens 1", " --batch-tokens 7", " --batch 1", " --batch 3 --batch-tokens 100"}) {
    const CliRun r = run("translate --model " + dir_ + "/model" + flags + inputs);
    ASSERT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(r.output, plain.output) << flags;
  }
}

// --precision int8: the same commands with int8 products; an unknown precision is refused.
TEST_F(Cli, TranslateEvalAndAlignInInt8) {
  const std::string model = " --model " + dir_ + "/model";
  const std::string inputs = " ab ba abc cab bca aab cc acb bac cba";
  const CliRun fp = run("translate" + model + inputs), q = run("translate --precision int8" + model + inputs);
  ASSERT_EQ(q.code, 0) << q.output;
  EXPECT_EQ(std::count(q.output.begin(), q.output.end(), '\n'), std::count(fp.output.begin(), fp.output.end(), '\n'));
  CliRun r = run("eval --precision int8" + model + " --test " + dir_ + "/dev.tsv --json");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"exact_match\""), std::string::npos) << r.output;
  r = run("align --precision int8" + model + " --format pharaoh abc");
  EXPECT_EQ(r.code, 0) << r.output;
  r = run("translate --precision fp16" + model + " abc");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("fp16"), std::string::npos) << r.output;
}

// attend quantize writes a quarter-size copy that decodes in int8 unless told fp32, and refuses
// to overwrite a model or to write over its input.
TEST_F(Cli, QuantizeWritesAnInt8CopyThatDecodesInInt8) {
  const std::string model = dir_ + "/model", out = dir_ + "/model-int8";
  CliRun r = run("quantize --model " + model + " --out " + out);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("weights"), std::string::npos) << r.output;
  const auto size = [](const std::string& d) { return std::filesystem::file_size(d + "/model.safetensors"); };
  EXPECT_LT(size(out), size(model) / 2);  // (this tiny model's header and biases weigh; 22.3 -> 5.7 MB for a G2P one)
  const std::string inputs = " ab ba abc cab bca";
  const CliRun stored = run("translate --model " + out + inputs);
  ASSERT_EQ(stored.code, 0) << stored.output;
  EXPECT_EQ(run("translate --precision int8 --model " + out + inputs).output, stored.output);
  EXPECT_EQ(run("translate --precision fp32 --model " + out + inputs).code, 0);
  r = run("quantize --model " + model + " --out " + out);
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("already holds a model; give --overwrite"), std::string::npos) << r.output;
  r = run("quantize --model " + out + " --out " + out + " --overwrite");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("is also one of the inputs"), std::string::npos) << r.output;
  EXPECT_EQ(run("translate --model " + out + inputs).output, stored.output) << "the refused runs changed nothing";
  r = run("quantize --model " + dir_ + "/no-such-model --out " + dir_ + "/q2");
  EXPECT_NE(r.code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/q2")) << "a failed run leaves no directory";
}

TEST_F(Cli, InvalidFlagValuesNameTheValue) {
  CliRun r = run("train --threads 0 --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--threads"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0"), std::string::npos) << r.output;
  r = run("train --batch -1 --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("-1"), std::string::npos) << r.output;
  r = run("train --score cosine --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("cosine"), std::string::npos) << r.output;
}

// local-m's --position-rate auto is measured on the training data and kept in config.json;
// the mechanisms' own settings are checked and belong to the RNN model only.
TEST_F(Cli, MechanismSettingsReachTheModel) {
  const std::string data = "--task tsv --train " + dir_ + "/train.tsv --dev " + dir_ +
                           "/dev.tsv --hidden 16 --embedding 8 "
                           "--attention-dim 8 --epochs 1 --batch 8 ";
  CliRun r = run("train " + data + "--attention local-m --window 1 --position-rate auto --out " + dir_ + "/localm");
  ASSERT_EQ(r.code, 0) << r.output;
  // sources of 2-3 letters, targets twice as long: sum(S - 1) / sum(T) = 17 / 54
  EXPECT_NE(r.output.find("local-m: position rate 0.314815 from the training data"), std::string::npos) << r.output;
  EXPECT_NE(attend::read_file(dir_ + "/localm/config.json").find("\"position_rate\": 0.3148148"), std::string::npos)
      << attend::read_file(dir_ + "/localm/config.json");
  r = run("train " + data + "--attention location --location-filters 3 --location-width 5 --out " + dir_ + "/loc");
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string config = attend::read_file(dir_ + "/loc/config.json");
  EXPECT_NE(config.find("\"location_filters\": 3"), std::string::npos) << config;
  EXPECT_NE(config.find("\"location_width\": 5"), std::string::npos) << config;
  EXPECT_EQ(run("translate --model " + dir_ + "/loc abc").code, 0);
  r = run("train " + data + "--attention local-m --position-rate fast --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--position-rate: must be a number in (0, 1000] or auto, got 'fast'"), std::string::npos)
      << r.output;
  r = run("train " + data + "--attention location --location-width 4 --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("of width 4"), std::string::npos) << r.output;
  r = run("train --model transformer --sigma 2 --out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--sigma"), std::string::npos) << r.output;
}

TEST_F(Cli, MissingAndMalformedDataNameFileAndLine) {
  CliRun r = run("train --task tsv --train " + dir_ + "/missing.tsv --dev " + dir_ + "/dev.tsv --out " + dir_ + "/m2");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("missing.tsv"), std::string::npos) << r.output;

  std::ofstream(dir_ + "/notab.tsv") << "ab\tabab\nthis line has no tab\n";
  r = run("train --task tsv --train " + dir_ + "/notab.tsv --dev " + dir_ + "/dev.tsv --out " + dir_ + "/m2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("notab.tsv:2:"), std::string::npos) << r.output;

  std::ofstream(dir_ + "/empty.tsv") << "";
  r = run("train --task tsv --train " + dir_ + "/empty.tsv --dev " + dir_ + "/dev.tsv --out " + dir_ + "/m2");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("empty"), std::string::npos) << r.output;
}

TEST_F(Cli, FailedTrainingRunLeavesTheGoodCheckpointAlone) {
  const std::string model = dir_ + "/model/model.safetensors";
  const std::string before = attend::read_file(model);
  std::ofstream(dir_ + "/bad.tsv") << "ab\tabab\nbroken line\n";
  CliRun r = run("train --task tsv --train " + dir_ + "/bad.tsv --dev " + dir_ + "/dev.tsv --out " + dir_ + "/model");
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(attend::read_file(model), before);
}

TEST_F(Cli, TranslateWarnsOnUnknownCharactersAndReadsStdin) {
  CliRun r = run("translate --model " + dir_ + "/model ab 'a#b'");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("<unk>"), std::string::npos) << r.output;
  r = run("translate --model " + dir_ + "/model --show-attention ab");
  EXPECT_EQ(r.code, 0) << r.output;
  const std::string cmd = "printf 'ab\\nba\\n' | " + std::string(ATTEND_CLI) + " translate --model " + dir_ + "/model";
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[256];
  int lines = 0;
  while (std::fgets(buf, sizeof buf, p)) ++lines;
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_EQ(lines, 2);
}

TEST_F(Cli, EvalAndAlignProduceTheirOutputs) {
  CliRun r = run("eval --model " + dir_ + "/model --test " + dir_ + "/dev.tsv --json");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"exact_match\""), std::string::npos) << r.output;
  r = run("eval --model " + dir_ + "/model --test " + dir_ + "/dev.tsv");  // not G2P: no WER or PER in the labels
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("sentence errors"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("WER"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("PER"), std::string::npos) << r.output;
  r = run("align --model " + dir_ + "/model --out " + dir_ + "/a.png abc");
  EXPECT_EQ(r.code, 0) << r.output;
  const std::string png = attend::read_file(dir_ + "/a.png");
  EXPECT_EQ(png.substr(1, 3), "PNG");
  r = run("align --model " + dir_ + "/model --out " + dir_ + "/a.svg abc");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(attend::read_file(dir_ + "/a.svg").find("<svg"), std::string::npos);
  // An output cut at --max-length has no </s> row: still a picture.
  r = run("align --model " + dir_ + "/model --max-length 1 --out " + dir_ + "/cut.png abc");
  EXPECT_EQ(r.code, 0) << r.output;
  r = run("align --model " + dir_ + "/model --map 1:1 --out " + dir_ + "/a.png abc");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("one attention map"), std::string::npos) << r.output;
  r = run("align --model " + dir_ + "/model --out " + dir_ + "/a.bmp abc");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find(".bmp"), std::string::npos) << r.output;
}

// --model transformer through train, translate, eval and align; each architecture's flags are
// refused for the other, and decoding options it cannot honour are errors.
TEST_F(Cli, TransformerTrainsTranslatesAndDrawsEveryHead) {
  const std::string data = "--task tsv --train " + dir_ + "/train.tsv --dev " + dir_ + "/dev.tsv ";
  const std::string model = dir_ + "/transformer";
  CliRun r = run("train --model transformer " + data +
                 "--dim 16 --heads 2 --ffn 32 --layers 1 --decoder-layers 2 --dropout 0.2 --attention-dropout 0 "
                 "--epochs 2 --batch 8 --out " +
                 model);
  ASSERT_EQ(r.code, 0) << r.output;
  const std::string config = attend::read_file(model + "/config.json");
  EXPECT_NE(config.find("\"architecture\": \"transformer\""), std::string::npos) << config;
  EXPECT_NE(config.find("\"decoder_layers\": 2"), std::string::npos) << config;
  EXPECT_NE(config.find("\"attention_dropout\": 0.0,"), std::string::npos) << config;
  EXPECT_NE(config.find("\"activation_dropout\": 0.2,"), std::string::npos) << config;  // --dropout's
  r = run("translate --model " + model + " --beam 3 abc cab");
  EXPECT_EQ(r.code, 0) << r.output;
  r = run("eval --model " + model + " --test " + dir_ + "/dev.tsv --alignment-stats --json");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("\"monotonicity\""), std::string::npos) << r.output;
  for (const char* map : {"all", "mean", "2:1"}) {
    r = run("align --model " + model + " --map " + map + " --out " + dir_ + "/t.png abc");
    EXPECT_EQ(r.code, 0) << map << ": " << r.output;
    EXPECT_EQ(attend::read_file(dir_ + "/t.png").substr(1, 3), "PNG");
  }
  r = run("align --model " + model + " --out " + dir_ + "/t.svg abc");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(attend::read_file(dir_ + "/t.svg").find("layer 2 head 2"), std::string::npos);
  r = run("align --model " + model + " --format pharaoh --map 1:2 abc");
  EXPECT_EQ(r.code, 0) << r.output;
  for (const char* bad : {"3:1", "1:x", "1:2:3", ":1"}) {
    r = run("align --model " + model + " --map " + bad + " --out " + dir_ + "/t.png abc");
    EXPECT_EQ(r.code, 2) << bad;
    EXPECT_NE(r.output.find("got '" + std::string(bad) + "'; this model has layer 1 head 1 to layer 2 head 2"),
              std::string::npos)
        << r.output;
  }
  r = run("translate --model " + model + " --window-back 1 abc");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("window"), std::string::npos) << r.output;
  r = run("train --model transformer --attention local-p " + data + "--out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--attention is a setting of --model rnn"), std::string::npos) << r.output;
  r = run("train --attention-dropout 0.1 " + data + "--out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--attention-dropout is a setting of --model transformer"), std::string::npos) << r.output;
  r = run("train --heads 4 " + data + "--out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("--heads is a setting of --model transformer"), std::string::npos) << r.output;
  r = run("train --model transformer --dim 30 --heads 4 " + data + "--out " + dir_ + "/x");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.output.find("dim 30 must be a positive multiple of heads 4"), std::string::npos) << r.output;
  // Refused before anything is written: the dates task would write its splits into --out first.
  r = run("train --task dates --model transformer --dim 30 --heads 4 --out " + dir_ + "/y");
  EXPECT_EQ(r.code, 2);
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/x") || std::filesystem::exists(dir_ + "/y")) << r.output;
}

TEST_F(Cli, CorruptOrTruncatedModelIsAClearError) {
  const std::string src = dir_ + "/model", bad = dir_ + "/corrupt";
  std::filesystem::copy(src, bad,
                        std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
  const std::string w = attend::read_file(bad + "/model.safetensors");
  attend::write_file_atomic(bad + "/model.safetensors", w.substr(0, w.size() - 100));
  CliRun r = run("translate --model " + bad + " ab");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("truncated"), std::string::npos) << r.output;
  attend::write_file_atomic(bad + "/config.json", "{ not json");
  r = run("translate --model " + bad + " ab");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;
  r = run("translate --model " + dir_ + "/no-such-model ab");
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.output.find("no-such-model"), std::string::npos) << r.output;
}

}  // namespace
