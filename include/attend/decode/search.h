// attend decode: batched greedy decoding and beam search, for any model (model.h) through its
// step decoder (models/step_decoder.h).
#pragma once

#include <vector>

#include "attend/data/batch.h"
#include "attend/models/step_decoder.h"
#include "attend/models/model.h"

namespace attend {

struct Hypothesis {
  std::vector<int> tokens;  // without <s> and </s>
  // One row per output token (and </s>) over the source positions: the attention weights, or,
  // for a model with several maps (Transformer layers x heads), their mean.
  std::vector<std::vector<float>> attention;
  // With several maps only: [G][rows][source] (G = model.attention_maps().size()).
  std::vector<std::vector<std::vector<float>>> maps;
  // [rows][K]: per row, the values of model.trace_names() (empty when it has none).
  std::vector<std::vector<float>> trace;
  float score = 0.0f;     // what the search ranks by: log_prob, normalised and penalised for beams
  float log_prob = 0.0f;  // log p(tokens, </s> | source) (without </s> when cut at the length limit)
};

// One hypothesis per batch row, in the batch's row order. Runs without recording gradients.
// Greedy for options.beam == 1, beam search otherwise.
std::vector<Hypothesis> decode(const Model& model, const Batch& batch, const DecodeOptions& options);
// The options.nbest best hypotheses of every batch row (fewer when the beam found fewer), best
// first.
std::vector<std::vector<Hypothesis>> decode_nbest(const Model& model, const Batch& batch, const DecodeOptions& options);
// An ensemble (decode/ensemble.h): the models' mean next-token probabilities; attention from the
// first. The models must share their vocabularies.
std::vector<std::vector<Hypothesis>> decode_nbest(const std::vector<const Model*>& models, const Batch& batch,
                                                  const DecodeOptions& options);

}  // namespace attend
