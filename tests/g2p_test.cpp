// Grapheme-to-phoneme data preparation and scoring.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "attend/data/cmudict.h"
#include "attend/data/tsv.h"
#include "attend/data/vocab.h"
#include "attend/eval/metrics.h"
#include "attend/io/files.h"

namespace attend {
namespace {

const char* kExcerpt =
    ";;; # CMUdict -- Major Version: 0.07\n"
    "ABACUS  AE1 B AH0 K AH0 S\n"
    "ABACUS(1)  AH0 B AE1 K AH0 S\n"
    "A.  EY1\n"
    "ABLE-BODIED  EY1 B AH0 L B AA1 D IY0 D\n"
    "AARON'S  EH1 R AH0 N Z\n"
    "ZYWICKI(2)  Z IH0 W IH1 K IY0\n";

TEST(Cmudict, StressVariantsCommentsAndSkippedWords) {
  cmudict::Parsed p = cmudict::parse(kExcerpt, "excerpt.dict");
  ASSERT_EQ(p.entries.size(), 4u);
  EXPECT_EQ(p.skipped, 2u);  // A. and ABLE-BODIED
  EXPECT_EQ(p.entries[0].word, "ABACUS");
  EXPECT_EQ(p.entries[0].phones, (std::vector<std::string>{"AE", "B", "AH", "K", "AH", "S"}));
  EXPECT_EQ(p.entries[1].word, "ABACUS");  // the variant, same word
  EXPECT_EQ(p.entries[2].word, "AARON'S");
  EXPECT_EQ(p.entries[3].word, "ZYWICKI");
}

TEST(Cmudict, BadLinesNameFileAndLine) {
  auto expect = [](const std::string& text, const std::string& needle) {
    try {
      cmudict::parse(text, "bad.dict");
      ADD_FAILURE() << "accepted: " << text;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect("ABACUS  AE1 B\nWORD\n", "bad.dict:2: no phones");
  expect("ABACUS  AE1 XX2 S\n", "bad.dict:1: unknown phone 'XX'");
  expect("ABACUS(X)  AE1\n", "bad.dict:1: bad variant marker");
  expect(";;; only comments\n", "no dictionary entries");
}

TEST(Cmudict, SplitsKeepAWordsPronunciationsTogetherAndAreDeterministic) {
  std::vector<cmudict::Entry> entries;
  for (int i = 0; i < 3000; ++i) {
    std::string w = "W";
    w += std::to_string(i * 7919);
    std::string word;
    for (char c : w) word += c >= '0' && c <= '9' ? static_cast<char>('A' + (c - '0')) : c;
    entries.push_back({word, {"AH", "B"}});
    entries.push_back({word, {"AH", "P"}});
  }
  cmudict::Splits a = cmudict::split(entries), b = cmudict::split(entries);
  EXPECT_EQ(a.test.size(), b.test.size());
  const double test_share = double(a.test.size()) / 6000, dev_share = double(a.dev.size()) / 6000;
  EXPECT_NEAR(test_share, 0.10, 0.03);
  EXPECT_NEAR(dev_share, 0.045, 0.02);
  std::set<std::string> test_words;
  for (const auto& e : a.test) test_words.insert(e.source);
  for (const auto& e : a.train) EXPECT_EQ(test_words.count(e.source), 0u) << e.source;
  // An existing split keeps its test set and carves dev from train words only.
  std::vector<Example> train_and_dev = a.train;
  train_and_dev.insert(train_and_dev.end(), a.dev.begin(), a.dev.end());
  cmudict::Splits r = cmudict::resplit(train_and_dev, a.test);
  EXPECT_EQ(r.test.size(), a.test.size());
  EXPECT_EQ(r.dev.size(), a.dev.size()) << "the same words go to dev, by the same hash";
  EXPECT_EQ(r.train.size(), a.train.size());
}

// Hand-worked WER/PER: a word is right when it matches any reference; PER is the edit distance
// to the closest reference over that reference's length, summed over words.
TEST(G2pScoring, WerAndPerWithMultipleReferencesAndEmptyOutput) {
  Tokenizer phones{Tokenizer::Kind::kSpace, false, false};
  std::vector<Example> test = {{"ABACUS", "AE B AH K AH S"},
                               {"ABACUS", "AH B AE K AH S"},
                               {"TOMATO", "T AH M EY T OW"},
                               {"TOMATO", "T AH M AA T OW"},
                               {"AXE", "AE K S"}};
  ReferenceSet set = group_references(test, [&](const std::string& t) { return phones.split(t); });
  ASSERT_EQ(set.sources, (std::vector<std::string>{"ABACUS", "TOMATO", "AXE"}));
  // ABACUS: equals its second reference. TOMATO: one substitution against either (6 phones).
  // AXE: empty output, 3 deletions against its 3-phone reference.
  std::vector<Tokens> out = {phones.split("AH B AE K AH S"), phones.split("T AH M IY T OW"), {}};
  Scores s = score(out, set.references);
  EXPECT_DOUBLE_EQ(1.0 - s.exact_match, 2.0 / 3.0);                 // WER
  EXPECT_DOUBLE_EQ(s.error_rate, (0.0 + 1.0 + 3.0) / (6 + 6 + 3));  // PER
}

TEST(G2pCli, DataCommandWritesTheThreeFilesFromALocalDictionaryOrASplit) {
  const auto dir = std::filesystem::temp_directory_path() / ("attend_g2p_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string dict;
  for (int i = 0; i < 400; ++i) {
    std::string w;
    for (int n = i + 1; n > 0; n /= 26) w += static_cast<char>('A' + n % 26);
    dict += w + "  AH0 B IY1\n";
  }
  std::ofstream(dir / "dict.txt") << dict << "BAD(LINE  AH0\n";
  const std::string cli = ATTEND_CLI;
  int rc = std::system((cli + " data cmudict --dict " + (dir / "dict.txt").string() + " --out " +
                        (dir / "own").string() + " > /dev/null 2> " + (dir / "err.txt").string())
                           .c_str());
  EXPECT_NE(WEXITSTATUS(rc), 0) << "a malformed line must fail";
  EXPECT_NE(read_file((dir / "err.txt").string()).find("dict.txt:401:"), std::string::npos)
      << read_file((dir / "err.txt").string());
  std::ofstream(dir / "dict.txt") << dict;
  rc = std::system((cli + " data cmudict --dict " + (dir / "dict.txt").string() + " --out " + (dir / "own").string() +
                    " > /dev/null")
                       .c_str());
  ASSERT_EQ(WEXITSTATUS(rc), 0);
  const size_t total = read_tsv((dir / "own/train.tsv").string()).size() +
                       read_tsv((dir / "own/dev.tsv").string()).size() +
                       read_tsv((dir / "own/test.tsv").string()).size();
  EXPECT_EQ(total, 400u);
  EXPECT_EQ(read_tsv((dir / "own/train.tsv").string())[0].target, "AH B IY");
  rc = std::system((cli + " data cmudict --split-from " + (dir / "own").string() + " --out " + (dir / "re").string() +
                    " > /dev/null")
                       .c_str());
  ASSERT_EQ(WEXITSTATUS(rc), 0);
  EXPECT_EQ(read_file((dir / "re/test.tsv").string()), read_file((dir / "own/test.tsv").string()));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace attend

namespace attend {
namespace {

// The whole G2P pipeline on a slice of the standard split (CI's copy of ../shared):
// data preparation, a tiny model, beam-search evaluation and the translate tool.
TEST(G2pPipeline, TinyModelOnASliceEndToEnd) {
  const std::filesystem::path shared =
      std::filesystem::path(ATTEND_SOURCE_DIR) / ".." / "shared" / "data" / "cmudict-g014b2b";
  ASSERT_TRUE(std::filesystem::exists(shared / "g014b2b.train")) << "the standard split is expected at " << shared;
  const auto dir = std::filesystem::temp_directory_path() / ("attend_g2p_pipe_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "slice");
  auto head = [](const std::filesystem::path& from, const std::filesystem::path& to, int every, int n) {
    std::ifstream in(from);
    std::ofstream out(to);
    std::string line;
    for (int i = 0, kept = 0; std::getline(in, line) && kept < n; ++i)
      if (i % every == 0) out << line << '\n', ++kept;
  };
  head(shared / "g014b2b.train", dir / "slice" / "cmu.train", 40, 2500);
  head(shared / "g014b2b.test", dir / "slice" / "cmu.test", 40, 200);
  const std::string cli = ATTEND_CLI, d = dir.string();
  auto run = [](const std::string& cmd) { return WEXITSTATUS(std::system(cmd.c_str())); };
  ASSERT_EQ(run(cli + " data cmudict --split-from " + d + "/slice --out " + d + "/data > /dev/null"), 0);
  ASSERT_EQ(run(cli + " train --task g2p --data " + d + "/data --out " + d + "/model --epochs 3 --hidden 64 " +
                "--encoder-hidden 32 --encoder-layers 1 --embedding 32 --attention-dim 32 --dropout 0.1 --lr 3e-3 " +
                "> /dev/null 2>&1"),
            0);
  ASSERT_EQ(run(cli + " eval --model " + d + "/model --test " + d +
                "/data/test.tsv --beam 3 --by-length 5,8 --json > " + d + "/eval.json"),
            0);
  const std::string eval = read_file(d + "/eval.json");
  // By length in letters: three buckets whose inputs add up to the test set's, each scored.
  const nlohmann::json j = nlohmann::json::parse(eval);
  ASSERT_EQ(j.at("by_length").size(), 3u) << eval;
  EXPECT_EQ(j["by_length"][1]["min"], 6);
  EXPECT_EQ(j["by_length"][1]["max"], 8);
  EXPECT_TRUE(j["by_length"][2]["max"].is_null());
  size_t inputs = 0;
  for (const auto& b : j["by_length"]) inputs += b["inputs"].get<size_t>();
  EXPECT_EQ(inputs, j["inputs"].get<size_t>());
  EXPECT_EQ(run(cli + " eval --model " + d + "/model --test " + d + "/data/test.tsv --by-length 8,5 > /dev/null 2>&1"),
            2);
  EXPECT_NE(eval.find("\"sentence_error_rate\""), std::string::npos) << eval;
  EXPECT_NE(eval.find("\"token_error_rate\""), std::string::npos) << eval;
  EXPECT_FALSE(j.contains("bleu")) << "BLEU of phone strings means nothing to a G2P user: " << eval;
  ASSERT_EQ(run(cli + " eval --model " + d + "/model --test " + d + "/data/test.tsv > " + d + "/eval.txt"), 0);
  const std::string text = read_file(d + "/eval.txt");  // the labels a G2P user looks for
  EXPECT_NE(text.find("sentence errors"), std::string::npos) << text;
  EXPECT_NE(text.find("(WER: words with a wrong pronunciation)"), std::string::npos) << text;
  EXPECT_NE(text.find("(PER: phone edit distance"), std::string::npos) << text;
  const double per = std::stod(eval.substr(eval.find("\"token_error_rate\":") + 19));
  // At lr 3e-3 (seeds 1 and 2: PER 0.53 and 0.46); at the recipe's 1e-3, 120 updates are still
  // on the unigram plateau (PER ~0.8), too close to any bound to test anything.
  EXPECT_LT(per, 0.65) << "three epochs on 2,500 words should get half the phones right: " << eval;
  ASSERT_EQ(run("echo ATTENTION | " + cli + " translate --model " + d + "/model > " + d + "/out.txt"), 0);
  const std::string phones = read_file(d + "/out.txt");
  EXPECT_GT(phones.size(), 3u);
  for (const auto& p : Tokenizer{Tokenizer::Kind::kSpace, false, false}.split(phones))
    EXPECT_TRUE(p.size() <= 2 && std::all_of(p.begin(), p.end(), ::isupper)) << "not a phone: " << p;
  std::filesystem::remove_all(dir);
}

// The Transformer's G2P recipe (docs/transformer.md): dropout 0.05 on embeddings and sub-layer
// outputs, none on the attention weights and the feed-forward layer, batches of 32, as written
// into the model's config; a flag the user gives wins over the recipe.
TEST(G2pPipeline, TransformerRecipeDefaultsAndAFlagOverridesThem) {
  const std::filesystem::path shared =
      std::filesystem::path(ATTEND_SOURCE_DIR) / ".." / "shared" / "data" / "cmudict-g014b2b";
  ASSERT_TRUE(std::filesystem::exists(shared / "g014b2b.train")) << "the standard split is expected at " << shared;
  const auto dir = std::filesystem::temp_directory_path() / ("attend_g2p_recipe_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "slice");
  auto head = [](const std::filesystem::path& from, const std::filesystem::path& to, int n) {
    std::ifstream in(from);
    std::ofstream out(to);
    std::string line;
    for (int i = 0; i < n && std::getline(in, line); ++i) out << line << '\n';
  };
  head(shared / "g014b2b.train", dir / "slice" / "cmu.train", 300);
  head(shared / "g014b2b.test", dir / "slice" / "cmu.test", 20);
  const std::string cli = ATTEND_CLI, d = dir.string();
  auto run = [](const std::string& cmd) { return WEXITSTATUS(std::system(cmd.c_str())); };
  ASSERT_EQ(run(cli + " data cmudict --split-from " + d + "/slice --out " + d + "/data > /dev/null"), 0);
  const std::string train = cli + " train --task g2p --model transformer --data " + d +
                            "/data --max-steps 1 --dim 16 --ffn 32 --heads 2 --layers 1 > /dev/null 2>&1 --out ";
  ASSERT_EQ(run(train + d + "/recipe"), 0);
  ASSERT_EQ(run(train + d + "/flags --attention-dropout 0.3 --dropout 0.2 --batch 8 --relative-positions 0"), 0);
  const auto recipe = nlohmann::json::parse(read_file(d + "/recipe/config.json"));
  EXPECT_FLOAT_EQ(recipe["model"]["dropout"].get<float>(), 0.05f) << recipe.dump();
  EXPECT_EQ(recipe["model"]["attention_dropout"].get<float>(), 0.0f) << recipe.dump();
  EXPECT_EQ(recipe["model"]["activation_dropout"].get<float>(), 0.0f) << recipe.dump();
  EXPECT_EQ(recipe["extra"]["training"]["batch"].get<int>(), 32) << recipe.dump();
  EXPECT_EQ(recipe["model"]["relative_positions"].get<int>(), 8) << recipe.dump();
  const auto flags = nlohmann::json::parse(read_file(d + "/flags/config.json"));
  EXPECT_FLOAT_EQ(flags["model"]["dropout"].get<float>(), 0.2f) << flags.dump();
  EXPECT_FLOAT_EQ(flags["model"]["attention_dropout"].get<float>(), 0.3f) << flags.dump();
  EXPECT_EQ(flags["model"]["activation_dropout"].get<float>(), 0.0f) << flags.dump();
  EXPECT_EQ(flags["extra"]["training"]["batch"].get<int>(), 8) << flags.dump();
  EXPECT_EQ(flags["model"]["relative_positions"].get<int>(), 0) << flags.dump();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace attend
