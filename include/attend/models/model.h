// attend models: what every sequence-to-sequence model offers the trainer, the searches and the
// translator, whatever its architecture: the RNN encoder-decoder with attention (seq2seq.h) or
// the Transformer (transformer.h). ModelConfig (model_config.h) names and builds them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "attend/data/batch.h"
#include "attend/models/step_decoder.h"
#include "attend/nn/module.h"
#include "attend/ops/loss.h"

namespace attend {

enum class Architecture { kRnn, kTransformer };
Architecture parse_architecture(const std::string& name);  // "rnn" | "transformer"
std::string to_string(Architecture a);

// One of the attention maps a decoding step returns: its label and where it comes from.
struct AttentionMap {
  std::string name;         // "attention" for a model's only map, "layer L head H" for a Transformer's
  int layer = 0, head = 0;  // a Transformer's decoder layer and cross-attention head, from 1; 0 for the only map
};

class Model : public Module {
 public:
  virtual Architecture architecture() const = 0;
  // The settings that rebuild this model (config.json's "model" section, with "architecture").
  virtual nlohmann::json config_json() const = 0;
  // Teacher-forced output logits for every target step, [T*B, V] in time-major order (as
  // batch.tgt_out). With an Rng the model is in training mode (dropout, sampling); without, not.
  virtual Var logits(const Batch& batch, Rng* rng) const = 0;
  // The training objective: mean cross-entropy over the target tokens (of the target distribution
  // `targets` describes: label smoothing, a teacher's probabilities [T*B, V] time-major like
  // logits(); its ignore_index is the model's padding), plus the model's own terms.
  virtual Var loss(const Batch& batch, const CrossEntropyOptions& targets, Rng* rng) const = 0;
  // The reference tokens alone, label-smoothed.
  Var loss(const Batch& batch, float label_smoothing, Rng* rng) const {
    return loss(batch, CrossEntropyOptions{.label_smoothing = label_smoothing}, rng);
  }
  // Incremental decoding of `batch` (inference mode, no gradients) with `rows_per_source`
  // rows per source: row b * rows_per_source + k belongs to source b. Throws
  // std::invalid_argument for options the model cannot honour.
  virtual std::unique_ptr<StepDecoder> decoder(const Batch& batch, int rows_per_source,
                                               const DecodeOptions& options) const = 0;
  // Inference from here on: the model may compute once what its weights alone determine (such
  // as per-vocabulary input tables) and reuse it in every later encode and decode. Call it again
  // after changing the weights. Recording on a tape ignores what freeze computed, so gradients
  // stay exact.
  virtual void freeze() {}
  // The longest source (in tokens) the model takes; longer inputs are refused one by one.
  virtual int max_source_length() const { return 4096; }
  // The G attention maps of a step, in the order of NextTokenScores::weights: {"attention"} for one;
  // a Transformer's cross-attention layer by layer, head by head.
  virtual std::vector<AttentionMap> attention_maps() const { return {{"attention", 0, 0}}; }
  // What decoding records per output step beside the weights, each a source position (local-p's
  // predicted centre): the names of NextTokenScores::trace's columns. Empty for most models.
  virtual std::vector<std::string> trace_names() const { return {}; }
};

}  // namespace attend
