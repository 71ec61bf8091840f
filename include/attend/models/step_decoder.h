// attend models: what a model gives the searches (decode/search.h), whatever its architecture:
// one decoding step at a time over N rows (N = sources x rows per source, the beam size).
#pragma once

#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "attend/tensor.h"

namespace attend {

inline constexpr int kMaxBeam = 1024, kMaxDecodeLength = 1 << 16;

struct DecodeOptions {
  enum class LengthNorm {
    kPower,  // log p / |Y|^alpha
    kGnmt,   // log p / ((5 + |Y|)^alpha / 6^alpha) (Wu et al. 2016)
  };
  int beam = 1;                 // 1 = greedy
  float length_penalty = 1.0f;  // alpha of the beam's length normalisation (0 = raw log-probability)
  int max_length = 0;           // 0 = 2 * source length + 10 (or max_length_ratio)
  // Window constraint: attend only within [last - window_back, last + window_forward] of the
  // position attended (argmax) at the previous step; -1 = no constraint. RNN models, any mechanism.
  int window_back = -1, window_forward = -1;
  // RNN models: decode with the general step (one op per product, any mechanism) even where the
  // fused step applies. For tests and benchmarks: both give the same logits up to rounding.
  bool reference_step = false;
  LengthNorm length_norm = LengthNorm::kPower;
  // Beams: + beta * sum over source positions of log(min(attention received, 1)) (Wu et al.
  // 2016), which favours hypotheses that attend to every source token; 0 = off.
  float coverage_penalty = 0.0f;
  // > 0: outputs of at most ceil(ratio x source length) tokens (and max_length, if set).
  float max_length_ratio = 0.0f;
  int nbest = 1;  // hypotheses kept per source, best first (decode_nbest); at most beam
  // Throws std::invalid_argument naming the field and its range (beam 1..kMaxBeam, nbest
  // 1..beam, max_length 0..kMaxDecodeLength, windows >= -1, length_penalty 0..100,
  // coverage_penalty 0..100, max_length_ratio 0..1000). decode() calls it.
  void validate() const;
};

// The most tokens an output of a source of `source_length` tokens may have: max_length,
// ceil(max_length_ratio x source length) (the smaller, when both are set; at least 1), or
// 2 x source length + 10.
inline int step_limit(int source_length, const DecodeOptions& options) {
  if (options.max_length_ratio > 0.0f) {
    const double r = std::ceil(double(options.max_length_ratio) * source_length);
    const int by_ratio = static_cast<int>(std::clamp(r, 1.0, double(kMaxDecodeLength)));
    return options.max_length > 0 ? std::min(options.max_length, by_ratio) : by_ratio;
  }
  return options.max_length > 0 ? options.max_length : 2 * source_length + 10;
}

// The searches keep K rows per source, row b * K + k for source b: the source of every row.
inline std::vector<int> beam_rows(int sources, int rows_per_source) {
  std::vector<int> rows(size_t(sources) * rows_per_source);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int>(i) / rows_per_source;
  return rows;
}

struct NextTokenScores {
  Tensor logits;   // [N,V] scores of the next token
  Tensor weights;  // [N,G,S] the step's attention over source positions: G maps (1 for the RNN
                   // model, layers x heads of cross-attention for the Transformer)
  Tensor trace;    // [N,K] what the model exposes per step (Model::trace_names()), or empty (K = 0)
};

class StepDecoder {
 public:
  virtual ~StepDecoder() = default;
  // Feeds every row's previous token prev [N] (<s> at the first step) and scores the next one.
  virtual NextTokenScores step(const std::vector<int>& prev) = 0;
  // Beam search: row i continues the hypothesis of row parents[i] (always of the same source).
  virtual void reorder(const std::vector<int>& parents) = 0;
  // The searches, when sentences finish: continue with rows `rows` only (increasing), which
  // become rows 0..n-1, so that finished sentences cost nothing. Returns false when the decoder
  // cannot drop rows (the search then keeps stepping every row); attend's decoders all can.
  virtual bool keep(const std::vector<int>& rows) {
    (void)rows;
    return false;
  }
  // The most steps this decoder can take (a Transformer's positions end at its max_length).
  virtual int max_steps() const { return INT_MAX; }
};

}  // namespace attend
