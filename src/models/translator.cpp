#include "attend/models/translator.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "attend/io/files.h"
#include "attend/io/safetensors.h"
#include "attend/nn/init.h"

namespace attend {

namespace {
constexpr const char* kFormat = "attend-seq2seq";
}  // namespace

Vocab parse_vocab(const std::string& text, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_array()) throw std::runtime_error(path + ": expected a JSON array of tokens");
  std::vector<std::string> tokens;
  for (const auto& t : j) {
    if (!t.is_string()) throw std::runtime_error(path + ": entry " + std::to_string(tokens.size()) + " is not a string");
    tokens.push_back(t.get<std::string>());
  }
  try {
    return Vocab(tokens);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
}

ModelFileConfig parse_model_config(const std::string& text, const std::string& path) {
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": not valid JSON (" + e.what() + ")");
  }
  ModelFileConfig c;
  try {
    if (!config.is_object() || config.value("format", "") != kFormat)
      throw std::invalid_argument(std::string("format is not '") + kFormat + "'");
    c.model = config.at("model").get<ModelConfig>();
    c.source = config.at("source").get<Tokenizer>();
    c.target = config.at("target").get<Tokenizer>();
    c.extra = config.value("extra", nlohmann::json::object());
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return c;
}

Translator::Translator(std::unique_ptr<Model> model, Tokenizer src_tok, Tokenizer tgt_tok, Vocab src_vocab, Vocab tgt_vocab,
                       nlohmann::json extra)
    : model_(std::move(model)),
      src_tok_(src_tok),
      tgt_tok_(tgt_tok),
      src_vocab_(std::move(src_vocab)),
      tgt_vocab_(std::move(tgt_vocab)),
      extra_(std::move(extra)) {
  if (!model_) throw std::invalid_argument("Translator: no model");
}

Translator Translator::load(const std::string& dir) {
  const std::string config_path = dir + "/config.json";
  if (!std::filesystem::is_directory(dir)) throw std::runtime_error(dir + ": no such model directory");
  ModelFileConfig c = parse_model_config(read_file(config_path), config_path);
  const ModelConfig& mc = c.model;
  Vocab sv = parse_vocab(read_file(dir + "/src_vocab.json"), dir + "/src_vocab.json");
  Vocab tv = parse_vocab(read_file(dir + "/tgt_vocab.json"), dir + "/tgt_vocab.json");
  if (sv.size() != mc.src_vocab() || tv.size() != mc.tgt_vocab()) {
    throw std::runtime_error(config_path + ": vocabulary sizes " + std::to_string(mc.src_vocab()) + "/" +
                             std::to_string(mc.tgt_vocab()) + " do not match the vocabulary files (" +
                             std::to_string(sv.size()) + "/" + std::to_string(tv.size()) + ")");
  }
  Rng rng(0);
  std::unique_ptr<Model> model;
  {
    init::SkipScope skip;  // every weight comes from the file (assign_parameters checks)
    model = mc.build(rng);
  }
  const std::string weights = dir + "/model.safetensors";
  assign_parameters(model->parameters(), load_safetensors(weights), weights);
  model->freeze();  // a loaded model is for inference
  return Translator(std::move(model), c.source, c.target, std::move(sv), std::move(tv), std::move(c.extra));
}

void Translator::save(const std::string& dir) const {
  make_directories(dir);
  nlohmann::json config = {{"format", kFormat},   {"version", 1},       {"model", model_->config_json()},
                           {"source", src_tok_}, {"target", tgt_tok_}, {"extra", extra_}};
  write_file_atomic(dir + "/src_vocab.json", nlohmann::json(src_vocab_.tokens()).dump(1) + "\n");
  write_file_atomic(dir + "/tgt_vocab.json", nlohmann::json(tgt_vocab_.tokens()).dump(1) + "\n");
  save_safetensors(dir + "/model.safetensors", model_->parameters(), {{"format", kFormat}});
  write_file_atomic(dir + "/config.json", config.dump(2) + "\n");  // last: a directory with config.json is complete
}

std::vector<Translation> Translator::translate(const std::vector<std::string>& sources, const DecodeOptions& options,
                                               int batch_size) const {
  std::vector<Translation> out(sources.size());
  std::vector<EncodedExample> enc;
  std::vector<int> real;  // inputs with at least one token
  for (size_t i = 0; i < sources.size(); ++i) {
    EncodedExample e;
    out[i].source_tokens = src_tok_.split(sources[i]);
    for (const auto& t : out[i].source_tokens) {
      e.src.push_back(src_vocab_.id(t));
      out[i].unknown += e.src.back() == Vocab::kUnk;
    }
    enc.push_back(std::move(e));
    if (!enc.back().src.empty()) real.push_back(static_cast<int>(i));
  }
  // Batches of similar lengths: less padding for the encoder to run over and, with greedy
  // decoding dropping finished sentences, fewer steps for nothing. Outputs return in input order.
  std::stable_sort(real.begin(), real.end(), [&](int a, int b) { return enc[a].src.size() < enc[b].src.size(); });
  for (size_t start = 0; start < real.size(); start += batch_size) {
    std::vector<int> idx(real.begin() + start, real.begin() + std::min(real.size(), start + batch_size));
    Batch batch = make_batch(enc, idx);
    std::vector<Hypothesis> hyps = decode(*model_, batch, options);
    for (int r = 0; r < batch.B; ++r) {
      Translation& t = out[idx[r]];
      for (int id : hyps[r].tokens) t.target_tokens.push_back(tgt_vocab_.token(id));
      t.text = tgt_tok_.join(t.target_tokens);
      t.attention = std::move(hyps[r].attention);
      t.maps = std::move(hyps[r].maps);
      t.score = hyps[r].score;
    }
  }
  return out;
}

}  // namespace attend
