// Hostile or broken files are clear errors that name the file and the bad value (the table in
// docs/reliability.md), never a crash or a giant allocation.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "attend/data/tsv.h"
#include "attend/io/safetensors.h"
#include "attend/models/translator.h"

namespace attend {
namespace {

// A safetensors file with this JSON header and `data_bytes` zero bytes of data.
std::string with_header(const std::string& json, size_t data_bytes) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((uint64_t(json.size()) >> (8 * i)) & 0xff);
  return out + json + std::string(data_bytes, '\0');
}

// Runs f, which must throw std::runtime_error with every needle in its message.
template <class F>
void expect_error(F f, std::initializer_list<const char*> needles) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << *needles.begin();
  } catch (const std::runtime_error& e) {
    for (const char* n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "'" << n << "' not in: " << e.what();
  }
}

TEST(Limits, SafetensorsHeadersThatLieAreRejected) {
  auto parse = [](const std::string& bytes) { return [bytes] { parse_safetensors(bytes, "w.safetensors"); }; };
  // Header length beyond the 100 MB bound, and beyond the file.
  std::string huge(8, '\0');
  huge[4] = 1;  // 2^32 bytes
  expect_error(parse(huge + "{}"), {"w.safetensors", "header size 4294967296 exceeds the limit"});
  expect_error(parse(with_header("{}", 0).substr(0, 9)), {"w.safetensors", "runs past the end"});
  // Element counts whose byte size would overflow 64 bits.
  expect_error(parse(with_header(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0)),
               {"tensor 'x'", "too large"});
  // Offsets outside the data, reversed, or not matching the shape; overlapping tensors.
  expect_error(parse(with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8000]}})", 8)),
               {"tensor 'x'", "[0, 8000] outside the 8 data bytes"});
  expect_error(parse(with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8)), {"outside"});
  expect_error(parse(with_header(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
               {"shape [3] needs 12 bytes, offsets give 8"});
  expect_error(parse(with_header(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                 12)),
               {"overlap at byte 4"});
  expect_error(parse(with_header(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)), {"negative"});
  expect_error(parse(with_header(R"({"x":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]}})", 4)),
               {"at most 4 dims"});
  expect_error(parse(with_header(R"([1,2,3])", 0)), {"not a JSON object"});
}

TEST(Limits, ConfigsVocabulariesAndDataFiles) {
  Rng rng(3);
  Seq2SeqConfig c;
  c.src_vocab = c.tgt_vocab = 10;
  nlohmann::json j = {{"format", "attend-seq2seq"}, {"model", c}, {"source", Tokenizer{}}, {"target", Tokenizer{}}};
  EXPECT_NO_THROW(parse_model_config(j.dump(), "m/config.json"));
  // A size that would allocate gigabytes is refused before anything is built.
  nlohmann::json big = j;
  big["model"]["hidden"] = 1000000;
  expect_error([&] { parse_model_config(big.dump(), "m/config.json"); },
               {"m/config.json", "hidden is 1000000, more than the limit of 16384"});
  big = j;
  big["model"]["tgt_vocab"] = 4000000;
  big["model"]["embedding"] = 4096;
  expect_error([&] { parse_model_config(big.dump(), "m/config.json"); }, {"m/config.json", "more than the limit"});
  nlohmann::json wrong = j;
  wrong["model"]["hidden"] = "wide";
  expect_error([&] { parse_model_config(wrong.dump(), "m/config.json"); }, {"m/config.json", "hidden"});
  wrong["model"]["hidden"] = 1e20;  // not cast silently to some int
  expect_error([&] { parse_model_config(wrong.dump(), "m/config.json"); }, {"m/config.json", "hidden", "1e+20"});
  wrong["model"]["hidden"] = -5;
  expect_error([&] { parse_model_config(wrong.dump(), "m/config.json"); },
               {"m/config.json", "hidden must be >= 1, got -5"});
  wrong = j;
  wrong["format"] = "pytorch";
  expect_error([&] { parse_model_config(wrong.dump(), "m/config.json"); }, {"m/config.json", "format"});

  // Weights that do not fit the config's shapes.
  Seq2Seq model(c, rng);
  auto tensors = parse_safetensors(safetensors_bytes(model.parameters()), "m/model.safetensors");
  Seq2SeqConfig other = c;
  other.hidden = 64;
  Seq2Seq wider(other, rng);
  expect_error([&] { assign_parameters(wider.parameters(), tensors, "m/model.safetensors"); },
               {"m/model.safetensors", "has shape", "the model (config.json) expects"});

  // Vocabularies: duplicates, missing specials, non-strings.
  expect_error([] { parse_vocab(R"(["<pad>","<unk>","<s>","</s>","a","a"])", "m/tgt_vocab.json"); },
               {"m/tgt_vocab.json", "'a'"});
  expect_error([] { parse_vocab(R"(["a","b"])", "m/src_vocab.json"); }, {"m/src_vocab.json"});
  expect_error([] { parse_vocab(R"(["<pad>","<unk>","<s>","</s>",5])", "m/src_vocab.json"); },
               {"m/src_vocab.json", "entry 4 is not a string"});

  // Data files: the line and the value.
  expect_error([] { parse_tsv("a\tb\n\nx y z\n", "d.tsv"); }, {"d.tsv:3:", "no tab in 'x y z'"});
  expect_error([] { parse_tsv("a\tb\tc\n", "d.tsv"); }, {"d.tsv:1:", "more than one tab"});
  expect_error([] { parse_tsv("a\t\n", "d.tsv"); }, {"d.tsv:1:", "empty target"});
  expect_error([] { parse_tsv(std::string(5000, 'a') + "\tb\n", "d.tsv"); }, {"d.tsv:1:", "5002 bytes", "4096"});
  expect_error([] { parse_tsv("\n\n", "d.tsv"); }, {"d.tsv", "no examples"});
  EXPECT_EQ(parse_tsv("a\tb\r\nc\td", "d.tsv").size(), 2u);
}

}  // namespace
}  // namespace attend
