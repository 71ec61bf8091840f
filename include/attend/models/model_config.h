// attend models: the settings of either architecture, as config.json and TrainOptions hold them,
// and the one place that builds a Model from them.
#pragma once

#include <memory>

#include <nlohmann/json_fwd.hpp>

#include "attend/models/model.h"
#include "attend/models/seq2seq.h"
#include "attend/models/transformer.h"

namespace attend {

struct ModelConfig {
  Architecture architecture = Architecture::kRnn;
  Seq2SeqConfig rnn;              // used when architecture == kRnn
  TransformerConfig transformer;  // used when architecture == kTransformer
  void set_vocabularies(int src, int tgt);
  int src_vocab() const;
  int tgt_vocab() const;
  void validate() const;  // the chosen architecture's settings; throws std::invalid_argument
  std::unique_ptr<Model> build(Rng& rng) const;
};
// {"architecture": "rnn" | "transformer", ...that architecture's fields}. Reading, a missing
// "architecture" means rnn (model directories written before the Transformer existed).
void to_json(nlohmann::json& j, const ModelConfig& c);
void from_json(const nlohmann::json& j, ModelConfig& c);

}  // namespace attend
