#include "attend/models/translator.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <tuple>

#include "attend/data/utf8.h"
#include "attend/io/checkpoint.h"
#include "attend/io/files.h"
#include "attend/io/int8_weights.h"
#include "../io/json_field.h"
#include "attend/io/safetensors.h"
#include "attend/nn/init.h"

namespace attend {

namespace {
constexpr const char* kFormat = "attend-seq2seq";
// A SentencePiece tokenizer's model, in the model directory beside config.json.
constexpr const char* kSourceSubwords = "source.spm";
constexpr const char* kTargetSubwords = "target.spm";

void load_subwords(Tokenizer& t, const CheckpointReader& files, const char* name, const std::string& side) {
  if (t.kind != Tokenizer::Kind::kSentencePiece) return;
  if (!files.has(name))
    throw std::runtime_error(files.path(name) + ": missing (config.json's " + side +
                             " tokenizer is sentencepiece, and this file is its model)");
  t.subwords = SentencePiece::from_bytes(std::string(files.bytes(name)), files.path(name));
}
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
    if (!t.is_string())
      throw std::runtime_error(path + ": entry " + std::to_string(tokens.size()) + " is not a string");
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
    reject_unknown_fields(config, {"format", "version", "model", "source", "target", "extra"}, "config.json");
    if (config.contains("version") && config["version"] != 1)
      throw std::invalid_argument("version " + config["version"].dump().substr(0, 40) +
                                  " is not supported (this attend reads version 1; a newer attend wrote it?)");
    c.model = config.at("model").get<ModelConfig>();
    c.source = config.at("source").get<Tokenizer>();
    c.target = config.at("target").get<Tokenizer>();
    c.extra = config.value("extra", nlohmann::json::object());
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return c;
}

namespace {
std::string weights_bytes(const std::vector<NamedParameter>& params, Precision weights) {
  if (weights == Precision::kFp32) return safetensors_bytes(params, {{"format", kFormat}});
  const StoredInt8 stored = quantize_for_storage(params);
  return safetensors_bytes(stored.f32, {{"format", kFormat}, {"weights", "int8"}}, stored.i8);
}
}  // namespace

Translator::Translator(std::unique_ptr<Model> model, Tokenizer src_tok, Tokenizer tgt_tok, Vocab src_vocab,
                       Vocab tgt_vocab, nlohmann::json extra)
    : model_(std::move(model)),
      src_tok_(src_tok),
      tgt_tok_(tgt_tok),
      src_vocab_(std::move(src_vocab)),
      tgt_vocab_(std::move(tgt_vocab)),
      extra_(std::move(extra)) {
  if (!model_) throw std::invalid_argument("Translator: no model");
  parameter_count_ = model_->parameter_count();
}

namespace {
bool same_tokenizer(const Tokenizer& a, const Tokenizer& b) {
  if (a.kind != b.kind || a.lowercase != b.lowercase || a.collapse_spaces != b.collapse_spaces) return false;
  return !a.subwords || !b.subwords ? a.subwords == b.subwords : a.subwords->bytes() == b.subwords->bytes();
}
}  // namespace

void Translator::add_ensemble_member(Translator other) {
  const std::string which = "model " + std::to_string(ensemble_size() + 1) + " of the ensemble ";
  if (!same_tokenizer(src_tok_, other.src_tok_) || !same_tokenizer(tgt_tok_, other.tgt_tok_))
    throw std::invalid_argument(which +
                                "splits text otherwise than the first (its tokenizer or subword model differs)");
  for (auto [side, mine, theirs] :
       {std::tuple{"source", &src_vocab_, &other.src_vocab_}, {"target", &tgt_vocab_, &other.tgt_vocab_}})
    if (mine->tokens() != theirs->tokens())
      throw std::invalid_argument(which + "has another " + side + " vocabulary than the first (" +
                                  std::to_string(theirs->size()) + " tokens, the first " +
                                  std::to_string(mine->size()) + ")");
  members_.push_back(std::make_shared<const Translator>(std::move(other)));
}

Translator Translator::load(const std::string& dir, std::optional<Precision> precision) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) throw std::runtime_error(dir + ": no such model directory");
    throw_errno(dir, "cannot open the model directory", errno);  // permission, symlink loop, I/O error
  }
  if (!S_ISDIR(st.st_mode)) throw std::runtime_error(dir + ": not a directory (a model is a directory)");
  // Every file from one checkpoint, checked against its manifest before anything is parsed.
  const CheckpointReader files(dir, {"config.json", "src_vocab.json", "tgt_vocab.json", "model.safetensors"},
                               {kSourceSubwords, kTargetSubwords});
  const std::string config_path = files.path("config.json");
  ModelFileConfig c = parse_model_config(std::string(files.bytes("config.json")), config_path);
  load_subwords(c.source, files, kSourceSubwords, "source");
  load_subwords(c.target, files, kTargetSubwords, "target");
  const ModelConfig& mc = c.model;
  Vocab sv = parse_vocab(std::string(files.bytes("src_vocab.json")), files.path("src_vocab.json"));
  Vocab tv = parse_vocab(std::string(files.bytes("tgt_vocab.json")), files.path("tgt_vocab.json"));
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
  const std::string weights = files.path("model.safetensors");
  std::set<std::string> int8;
  std::map<std::string, Tensor> tensors = parse_safetensors(files.bytes("model.safetensors"), weights, nullptr, &int8);
  dequantize_stored(tensors, int8, weights);
  require_finite(tensors, weights);
  assign_parameters(model->parameters(), tensors, weights);
  model->freeze();  // a loaded model is for inference
  Translator t(std::move(model), c.source, c.target, std::move(sv), std::move(tv), std::move(c.extra));
  t.precision_ = precision.value_or(int8.empty() ? Precision::kFp32 : Precision::kInt8);
  if (t.precision_ == Precision::kInt8) t.model_->quantize(), t.model_->release_fp32();
  tensors.clear();
  trim_storage_cache();  // the file's copies (and released fp32 weights): not needed again
  return t;
}

void Translator::save(const std::string& dir, Precision weights) const {
  nlohmann::json config = {{"format", kFormat},  {"version", 1},       {"model", model_->config_json()},
                           {"source", src_tok_}, {"target", tgt_tok_}, {"extra", extra_}};
  std::vector<CheckpointFile> files = {{"src_vocab.json", nlohmann::json(src_vocab_.tokens()).dump(1) + "\n"},
                                       {"tgt_vocab.json", nlohmann::json(tgt_vocab_.tokens()).dump(1) + "\n"},
                                       {"model.safetensors", weights_bytes(model_->parameters(), weights)},
                                       {"config.json", config.dump(2) + "\n"}};
  for (const auto& [tok, name] : {std::pair{&src_tok_, kSourceSubwords}, {&tgt_tok_, kTargetSubwords}}) {
    if (tok->kind != Tokenizer::Kind::kSentencePiece) continue;
    if (!tok->subwords) throw std::logic_error("Translator::save: a sentencepiece tokenizer without its model");
    files.push_back({name, tok->subwords->bytes()});
  }
  save_checkpoint(dir, files);
}

std::vector<Translation> Translator::translate(const std::vector<std::string>& sources, const DecodeOptions& options,
                                               int batch_size, int64_t batch_tokens) const {
  options.validate();
  if (batch_size < 1)
    throw std::invalid_argument("translate: batch size must be >= 1, got " + std::to_string(batch_size));
  if (batch_tokens < 0)
    throw std::invalid_argument("translate: batch tokens must be >= 0, got " + std::to_string(batch_tokens));
  std::vector<const Model*> models = {model_.get()};  // an ensemble's too
  for (const auto& m : members_) models.push_back(m->model_.get());
  int limit = model_->max_source_length();
  for (const Model* m : models) limit = std::min(limit, m->max_source_length());
  std::vector<Translation> out(sources.size());
  std::vector<EncodedExample> enc;
  std::vector<int> real;  // inputs with at least one token
  for (size_t i = 0; i < sources.size(); ++i) {
    EncodedExample e;
    if (const std::string bad = describe_utf8_error(sources[i]); !bad.empty()) {
      out[i].error = bad;
      enc.push_back(std::move(e));
      continue;
    }
    out[i].source_tokens = src_tok_.split(sources[i]);
    for (const auto& t : out[i].source_tokens) {
      e.src.push_back(src_vocab_.id(t));
      out[i].unknown += e.src.back() == Vocab::kUnk;
    }
    if (e.src.size() > size_t(limit)) {
      out[i].error = "input of " + std::to_string(e.src.size()) + " tokens is longer than the model's limit of " +
                     std::to_string(limit);
      e.src.clear();
    }
    enc.push_back(std::move(e));
    if (!enc.back().src.empty()) real.push_back(static_cast<int>(i));
  }
  // Batches of similar lengths: less padding for the encoder to run over and, with greedy
  // decoding dropping finished sentences, fewer steps for nothing. Outputs return in input order.
  std::stable_sort(real.begin(), real.end(), [&](int a, int b) { return enc[a].src.size() < enc[b].src.size(); });
  for (size_t start = 0, end = 0; start < real.size(); start = end) {
    end = start + 1;  // sorted by length: the last input of a batch is its longest
    while (end < real.size() && end - start < size_t(batch_size) &&
           (batch_tokens == 0 || int64_t(end + 1 - start) * int64_t(enc[real[end]].src.size()) <= batch_tokens))
      ++end;
    std::vector<int> idx(real.begin() + start, real.begin() + end);
    Batch batch = make_batch(enc, idx);
    std::vector<std::vector<Hypothesis>> hyps = decode_nbest(models, batch, options);
    for (int r = 0; r < batch.B; ++r) {
      Translation& t = out[idx[r]];
      for (Hypothesis& h : hyps[r]) {
        Translation::Alternative a;
        for (int id : h.tokens) a.tokens.push_back(tgt_vocab_.token(id));
        a.text = tgt_tok_.join(a.tokens);
        a.score = h.score, a.log_prob = h.log_prob;
        if (t.nbest.empty()) {  // the best: this translation
          t.target_tokens = a.tokens, t.text = a.text, t.score = a.score, t.log_prob = a.log_prob;
          t.attention = std::move(h.attention);
          t.maps = std::move(h.maps);
          t.trace = std::move(h.trace);
        }
        t.nbest.push_back(std::move(a));
      }
      if (options.nbest == 1) t.nbest.clear();
    }
  }
  return out;
}

}  // namespace attend
