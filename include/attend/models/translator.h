// attend models: a trained model with its tokenizers and vocabularies, as saved in a model
// directory:
//   config.json        model settings, tokenizers, task and training settings
//   model.safetensors  weights
//   src_vocab.json, tgt_vocab.json   token lists (ids are positions)
//   source.spm, target.spm           SentencePiece models, for sentencepiece tokenizers
//   checkpoint.json    the manifest: each file's size and SHA-256, checked when loading
//   metrics.jsonl      one line per evaluation during training
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attend/data/vocab.h"
#include "attend/decode/search.h"
#include "attend/models/model.h"
#include "attend/ops/int8.h"
#include "attend/models/model_config.h"

namespace attend {

struct Translation {
  std::string text;                        // the output, detokenised
  std::vector<std::string> source_tokens;  // as the model saw them (after normalisation)
  std::vector<std::string> target_tokens;  // output tokens, without </s>
  // [target_tokens + 1 (</s>; no such row when the output was cut at the length limit)][source_tokens];
  // Transformer: the mean of the maps.
  std::vector<std::vector<float>> attention;
  // Models with several attention maps (Transformer: cross-attention of every layer and head,
  // named by model().attention_maps()): [map][target_tokens + 1][source_tokens]. Else empty.
  std::vector<std::vector<std::vector<float>>> maps;
  // [target_tokens + 1][K]: what the model records per step beside the weights, named by
  // model().trace_names() (local-p's predicted centre); empty for most models.
  std::vector<std::vector<float>> trace;
  float score = 0.0f;     // what the search ranked by (normalised and penalised for beams)
  float log_prob = 0.0f;  // log p(output, </s> | source)
  // With DecodeOptions::nbest > 1: the best outputs, best first (the first is this one).
  struct Alternative {
    std::string text;
    std::vector<std::string> tokens;
    float score = 0.0f, log_prob = 0.0f;
  };
  std::vector<Alternative> nbest;
  size_t unknown = 0;  // source tokens not in the vocabulary (mapped to <unk>)
  std::string error;   // why this input was not translated (e.g. too long); else empty
};

// What a model directory's config.json holds; parse_model_config validates every field and
// names `origin` in its errors.
struct ModelFileConfig {
  ModelConfig model;
  Tokenizer source, target;
  nlohmann::json extra = nlohmann::json::object();
};
ModelFileConfig parse_model_config(const std::string& text, const std::string& origin);
// A vocabulary file: a JSON array of token strings starting with the four specials.
Vocab parse_vocab(const std::string& text, const std::string& origin);

class Translator {
 public:
  Translator(std::unique_ptr<Model> model, Tokenizer src_tok, Tokenizer tgt_tok, Vocab src_vocab, Vocab tgt_vocab,
             nlohmann::json extra = nlohmann::json::object());
  // Loads and validates a model directory (every file against its manifest, every weight
  // finite); errors name the file and what is wrong. With Precision::kInt8 the model decodes
  // with int8 products (Model::quantize); without a precision, as the directory was saved (int8
  // for one written with int8 weights, io/int8_weights.h; else fp32). An int8 model keeps its
  // weights in int8 only (Module::release_fp32): it decodes, saves and lists its parameters
  // (dequantized), but cannot be trained through.
  static Translator load(const std::string& dir, std::optional<Precision> precision = std::nullopt);
  // Writes config.json, the vocabularies and model.safetensors as one unit (io/checkpoint.h):
  // after any failure or kill the directory holds the old model or the new one, whole. With
  // another possible writer, hold the directory's lock (DirectoryLock) around it. `weights`
  // kInt8 stores the 2-D weights in int8 (attend quantize; a quarter of the bytes).
  void save(const std::string& dir, Precision weights = Precision::kFp32) const;

  // One Translation per source, in order. An input the model cannot take (longer than
  // model().max_source_length() tokens) is not translated and says why in its `error`; the
  // others are translated all the same. Inputs are decoded in batches of similar length: at
  // most batch_size sentences, and with batch_tokens > 0 at most that many padded source
  // tokens (sentences x the longest; a longer input goes alone).
  std::vector<Translation> translate(const std::vector<std::string>& sources, const DecodeOptions& options,
                                     int batch_size = 64, int64_t batch_tokens = 0) const;

  // Ensembles: decode with `other` too, averaging the models' next-token probabilities at every
  // step (decode/ensemble.h; attention from this model). It must read and write the same tokens:
  // the same tokenizers and vocabularies (std::invalid_argument naming what differs).
  void add_ensemble_member(Translator other);
  int ensemble_size() const { return 1 + static_cast<int>(members_.size()); }

  const Model& model() const { return *model_; }
  Precision precision() const { return precision_; }
  int64_t parameter_count() const { return parameter_count_; }  // (without dequantizing an int8 model)
  const Tokenizer& source_tokenizer() const { return src_tok_; }
  const Tokenizer& target_tokenizer() const { return tgt_tok_; }
  const Vocab& source_vocab() const { return src_vocab_; }
  const Vocab& target_vocab() const { return tgt_vocab_; }
  // Free-form settings saved in config.json (task, training options).
  const nlohmann::json& extra() const { return extra_; }
  nlohmann::json& extra() { return extra_; }

 private:
  std::unique_ptr<Model> model_;
  Tokenizer src_tok_, tgt_tok_;
  Vocab src_vocab_, tgt_vocab_;
  nlohmann::json extra_;
  std::vector<std::shared_ptr<const Translator>> members_;  // an ensemble's other models
  Precision precision_ = Precision::kFp32;
  int64_t parameter_count_ = 0;
};

}  // namespace attend
