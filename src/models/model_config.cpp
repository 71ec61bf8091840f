#include "attend/models/model_config.h"

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace attend {

Architecture parse_architecture(const std::string& name) {
  if (name == "rnn") return Architecture::kRnn;
  if (name == "transformer") return Architecture::kTransformer;
  throw std::invalid_argument("unknown model architecture '" + name + "' (expected rnn or transformer)");
}

std::string to_string(Architecture a) { return a == Architecture::kRnn ? "rnn" : "transformer"; }

void ModelConfig::set_vocabularies(int src, int tgt) {
  rnn.src_vocab = transformer.src_vocab = src;
  rnn.tgt_vocab = transformer.tgt_vocab = tgt;
}

int ModelConfig::src_vocab() const {
  return architecture == Architecture::kRnn ? rnn.src_vocab : transformer.src_vocab;
}
int ModelConfig::tgt_vocab() const {
  return architecture == Architecture::kRnn ? rnn.tgt_vocab : transformer.tgt_vocab;
}

void ModelConfig::validate() const {
  if (architecture == Architecture::kRnn)
    rnn.validate();
  else
    transformer.validate();
}

std::unique_ptr<Model> ModelConfig::build(Rng& rng) const {
  if (architecture == Architecture::kRnn) return std::make_unique<Seq2Seq>(rnn, rng);
  return std::make_unique<Transformer>(transformer, rng);
}

void to_json(nlohmann::json& j, const ModelConfig& c) {
  if (c.architecture == Architecture::kRnn)
    j = c.rnn;
  else
    j = c.transformer;
  j["architecture"] = to_string(c.architecture);
}

void from_json(const nlohmann::json& j, ModelConfig& c) {
  if (!j.is_object())
    throw std::invalid_argument("model config: expected a JSON object, got " + j.dump().substr(0, 60));
  const auto it = j.find("architecture");
  if (it != j.end() && !it->is_string())
    throw std::invalid_argument("model config: 'architecture' must be \"rnn\" or \"transformer\", got " +
                                it->dump().substr(0, 60));
  c.architecture = it == j.end() ? Architecture::kRnn : parse_architecture(it->get<std::string>());
  if (c.architecture == Architecture::kRnn)
    c.rnn = j.get<Seq2SeqConfig>();
  else
    c.transformer = j.get<TransformerConfig>();
}

}  // namespace attend
