// attend decode: batched greedy decoding and beam search for the seq2seq model.
#pragma once

#include <vector>

#include "attend/data/batch.h"
#include "attend/models/seq2seq.h"

namespace attend {

struct DecodeOptions {
  int beam = 1;                 // 1 = greedy
  float length_penalty = 1.0f;  // beam scores are log p / length^alpha (0 = raw log-probability)
  int max_length = 0;           // 0 = 2 * source length + 10
  // Window constraint: attend only within [last - window_back, last + window_forward] of the
  // position attended (argmax) at the previous step; -1 = no constraint. Any mechanism.
  int window_back = -1, window_forward = -1;
};

struct Hypothesis {
  std::vector<int> tokens;                      // without <s> and </s>
  std::vector<std::vector<float>> attention;    // one row per output token (and </s>), over source positions
  float score = 0.0f;                           // log-probability (length-normalised for beams)
};

// One hypothesis per batch row, in the batch's row order. Runs without recording gradients.
std::vector<Hypothesis> decode(const Seq2Seq& model, const Batch& batch, const DecodeOptions& options);

}  // namespace attend
