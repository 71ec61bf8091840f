// SentencePiece inside the pipeline: training is deterministic, text round-trips exactly, the
// models live in the model directory (listed in its manifest), and a missing or damaged one is
// a clear error naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "attend/data/sentencepiece.h"
#include "attend/data/vocab.h"
#include "attend/models/translator.h"
#include "cli_run.h"

namespace attend {
namespace {

// 300 sentences over a few hundred made-up words (two or three syllables each).
std::vector<std::string> corpus() {
  const std::vector<std::string> syllables = {"ka", "lo", "mi", "ne", "ru", "ta",  "po", "si",
                                              "ve", "du", "ga", "fe", "bo", "che", "wu", "ly"};
  std::vector<std::string> out;
  uint32_t x = 12345;
  auto next = [&] { return (x = x * 1664525u + 1013904223u) >> 16; };
  for (int i = 0; i < 300; ++i) {
    std::string s;
    for (int k = 0; k < 4 + i % 7; ++k) {
      s.append(s.empty() ? "" : " ");
      for (uint32_t n = 2 + next() % 2; n > 0; --n) s.append(syllables[next() % syllables.size()]);
    }
    out.push_back(s + (i % 3 == 0 ? "." : ","));
  }
  return out;
}

TEST(SentencePiece, TrainsDeterministicallyAndRoundTripsText) {
  const SentencePieceOptions opt{.vocab_size = 60};
  const auto a = SentencePiece::train(corpus(), opt), b = SentencePiece::train(corpus(), opt);
  EXPECT_EQ(a->bytes(), b->bytes()) << "the same data and settings must give the same model";
  for (const std::string& s : {corpus()[0], corpus()[299], std::string("kalomi ruta, nesi.")}) {
    const std::vector<std::string> pieces = a->encode(s);
    EXPECT_FALSE(pieces.empty());
    EXPECT_EQ(a->decode(pieces), s);
  }
  EXPECT_EQ(a->decode(a->encode("  kalo   mine ")), "kalo mine") << "SentencePiece squeezes white space";
  // A character never seen in training comes out as a piece of its own, outside the vocabulary
  // (the model sees <unk>).
  const std::vector<std::string> unseen = a->encode("kalo \u00e9");
  const std::vector<std::string> known = a->pieces();
  EXPECT_EQ(std::count(known.begin(), known.end(), unseen.back()), 0) << unseen.back();
  const std::vector<std::string>& vocab = known;
  EXPECT_EQ(vocab.size(), 57u) << "60 pieces less <unk>, <s> and </s>";
  EXPECT_EQ(std::count(vocab.begin(), vocab.end(), "<unk>"), 0);
  const auto bpe = SentencePiece::train(corpus(), {.vocab_size = 60, .type = "bpe"});
  EXPECT_EQ(bpe->decode(bpe->encode(corpus()[7])), corpus()[7]);
}

TEST(SentencePiece, BadSettingsAndBadModelsAreClearErrors) {
  EXPECT_THROW(SentencePiece::train(corpus(), {.vocab_size = 4}), std::invalid_argument);
  EXPECT_THROW(SentencePiece::train(corpus(), {.vocab_size = 60, .type = "wordpiece"}), std::invalid_argument);
  EXPECT_THROW(SentencePiece::train({}, {}), std::invalid_argument);
  try {
    SentencePiece::train({"a b", "b a"}, {.vocab_size = 500});
    FAIL() << "a vocabulary larger than the text allows was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("500 pieces on 2 sentences"), std::string::npos) << e.what();
  }
  try {
    SentencePiece::from_bytes("not a model", "dir/source.spm");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("dir/source.spm: not a SentencePiece model"), std::string::npos) << e.what();
  }
  Tokenizer t{Tokenizer::Kind::kSentencePiece};
  EXPECT_THROW(t.split("text"), std::logic_error) << "no model, no tokens";
}

TEST(SentencePiece, TokenizerSettingsRoundTripThroughJson) {
  Tokenizer t{Tokenizer::Kind::kSentencePiece};
  t.subword_options = {.vocab_size = 123, .type = "bpe"};
  const nlohmann::json j = t;
  const Tokenizer back = j.get<Tokenizer>();
  EXPECT_EQ(back.kind, Tokenizer::Kind::kSentencePiece);
  EXPECT_EQ(back.subword_options.vocab_size, 123);
  EXPECT_EQ(back.subword_options.type, "bpe");
  nlohmann::json bad = j;
  bad["vocab_size"] = 3;
  EXPECT_THROW(bad.get<Tokenizer>(), std::invalid_argument);
}

class SubwordModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (std::filesystem::temp_directory_path() / ("attend_subword_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(dir_);
    std::ofstream train(dir_ + "/train.tsv");
    for (const std::string& s : corpus()) train << s << '\t' << s << '\n';
    train.close();
    const auto r = testing::run("train --train " + dir_ + "/train.tsv --dev " + dir_ +
                                "/train.tsv --tokenizer sentencepiece --vocab-size 60 --joint-vocab --hidden 16 "
                                "--embedding 8 --attention-dim 8 --max-steps 3 --out " +
                                dir_ + "/model");
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }
  static std::string dir_;
};
std::string SubwordModel::dir_;

TEST_F(SubwordModel, TheModelsAreInTheDirectoryAndOutputsAreDetokenized) {
  const std::string m = dir_ + "/model";
  std::ifstream manifest(m + "/checkpoint.json");
  const nlohmann::json files = nlohmann::json::parse(manifest).at("files");
  EXPECT_TRUE(files.contains("source.spm") && files.contains("target.spm")) << files.dump();
  const Translator tr = Translator::load(m);
  ASSERT_TRUE(tr.source_tokenizer().subwords);
  EXPECT_EQ(tr.target_vocab().size(), 4 + 57);
  const std::vector<Translation> out = tr.translate({corpus()[3]}, DecodeOptions{});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].text.find("\xe2\x96\x81"), std::string::npos) << "a raw piece marker in " << out[0].text;
  EXPECT_EQ(out[0].text, tr.target_tokenizer().join(out[0].target_tokens));
  const auto resumed = testing::run("train --resume " + m + " --max-steps 5");
  EXPECT_EQ(resumed.code, 0) << resumed.output;
  EXPECT_EQ(resumed.output.find("sentencepiece: one"), std::string::npos) << "a resumed run retrained its subwords";
}

// attend align reports words for subword models (--subwords: the pieces).
TEST_F(SubwordModel, AlignmentsAreOverWordsUnlessAskedForPieces) {
  const std::string text = corpus()[5];
  const size_t words = std::count(text.begin(), text.end(), ' ') + 1;
  const Translator tr = Translator::load(dir_ + "/model");
  const size_t pieces = tr.source_tokenizer().split(text).size();
  ASSERT_GT(pieces, words) << "the test needs words of several pieces";
  auto max_source = [](const std::string& pharaoh) {
    int most = -1;
    std::istringstream in(pharaoh);
    for (std::string pair; in >> pair;) most = std::max(most, std::stoi(pair.substr(0, pair.find('-'))));
    return most;
  };
  const auto word_level =
      testing::run("align --model " + dir_ + "/model --format pharaoh --max-length 40 '" + text + "'");
  ASSERT_EQ(word_level.code, 0) << word_level.output;
  EXPECT_LT(max_source(word_level.output), int(words)) << word_level.output;
  const auto piece_level =
      testing::run("align --model " + dir_ + "/model --format pharaoh --subwords --max-length 40 '" + text + "'");
  ASSERT_EQ(piece_level.code, 0) << piece_level.output;
  EXPECT_LT(max_source(piece_level.output), int(pieces)) << piece_level.output;
}

TEST_F(SubwordModel, AMissingOrDamagedSubwordModelIsNamed) {
  const std::string copy = dir_ + "/copy";
  std::filesystem::copy(dir_ + "/model", copy, std::filesystem::copy_options::recursive);
  { std::ofstream(copy + "/target.spm", std::ios::app) << "x"; }
  auto r = testing::run("translate --model " + copy + " 'kalo mine'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(copy + "/target.spm: does not match checkpoint.json"), std::string::npos) << r.output;
  std::filesystem::remove(copy + "/checkpoint.json");  // a legacy directory: nothing to check against
  r = testing::run("translate --model " + copy + " 'kalo mine'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(copy + "/target.spm: not a SentencePiece model"), std::string::npos) << r.output;
  std::filesystem::remove(copy + "/source.spm");
  r = testing::run("translate --model " + copy + " 'kalo mine'");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(r.output.find(copy + "/source.spm: missing (config.json's source tokenizer is sentencepiece"),
            std::string::npos)
      << r.output;
  r = testing::run("train --train " + dir_ + "/train.tsv --dev " + dir_ + "/train.tsv --vocab-size 60 --out " + dir_ +
                   "/x");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--vocab-size is a setting of --tokenizer sentencepiece, not of char"), std::string::npos)
      << r.output;
}

// A side that SentencePiece turns into no pieces at all (zero-width spaces) is named with its
// file and line before any training, and no model directory is written.
TEST_F(SubwordModel, ASideWithoutPiecesIsNamedWithItsLine) {
  const std::string bad = dir_ + "/empty_side.tsv";
  {
    std::ofstream out(bad);
    for (const std::string& s : corpus()) out << s << '\t' << s << '\n';
    out << "\n" << corpus()[0] << "\t\xe2\x80\x8b\xe2\x80\x8b\n";
  }
  const size_t line = corpus().size() + 2;
  const auto r = testing::run("train --train " + bad + " --dev " + dir_ +
                              "/train.tsv --tokenizer sentencepiece --vocab-size 60 --joint-vocab --hidden 16 "
                              "--embedding 8 --attention-dim 8 --max-steps 3 --out " +
                              dir_ + "/never");
  EXPECT_EQ(r.code, 1) << r.output;
  EXPECT_NE(
      r.output.find(
          bad + ":" + std::to_string(line) +
          ": the target '\xe2\x80\x8b\xe2\x80\x8b' has no tokens after tokenization (sentencepiece drops all of it)"),
      std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/never/config.json"));
}

}  // namespace
}  // namespace attend
