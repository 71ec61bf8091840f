// attend models: what a model gives the searches (decode/search.h), whatever its architecture:
// one decoding step at a time over N rows (N = sources x rows per source, the beam size).
#pragma once

#include <climits>
#include <vector>

#include "attend/tensor.h"

namespace attend {

inline constexpr int kMaxBeam = 1024, kMaxDecodeLength = 1 << 16;

struct DecodeOptions {
  int beam = 1;                 // 1 = greedy
  float length_penalty = 1.0f;  // beam scores are log p / length^alpha (0 = raw log-probability)
  int max_length = 0;           // 0 = 2 * source length + 10
  // Window constraint: attend only within [last - window_back, last + window_forward] of the
  // position attended (argmax) at the previous step; -1 = no constraint. RNN models, any mechanism.
  int window_back = -1, window_forward = -1;
  // RNN models: decode with the general step (one op per product, any mechanism) even where the
  // fused step applies. For tests and benchmarks: both give the same logits up to rounding.
  bool reference_step = false;
  // Throws std::invalid_argument naming the field and its range (beam 1..kMaxBeam, max_length
  // 0..kMaxDecodeLength, windows >= -1, length_penalty 0..100). decode() calls it.
  void validate() const;
};

// The searches' step limit: options.max_length, or 2 x the longest source + 10 when it is 0.
inline int step_limit(int longest_source, const DecodeOptions& options) {
  return options.max_length > 0 ? options.max_length : 2 * longest_source + 10;
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
