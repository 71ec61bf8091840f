// attend train --teacher: the teachers' next-token probabilities of every training example,
// computed once for the run instead of on every batch of every epoch. Each example keeps one row
// per target token and </s>: V floats, which fits for G2P-sized vocabularies (107,774 words x ~8
// steps x 43 phones: 150 MB) and not for translation's, or with --teacher-top-k K only the K
// most probable tokens (K ids and K probabilities: 64 bytes a token for K = 8, whatever V).
// The trainer asks bytes() first and otherwise computes the teachers' rows batch by batch.
#pragma once

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <vector>

#include "attend/data/batch.h"
#include "attend/tensor.h"
#include "attend/train/communicator.h"

namespace attend {

class TeacherCache {
 public:
  // The teachers' mean next-token probabilities of a batch: [T*B, V], time-major like Batch.
  using Probabilities = std::function<Tensor(const Batch&)>;
  // Asked after every round of chunks (one per rank); true on any rank stops all (collective).
  using ShouldStop = std::function<bool()>;
  // Thrown by the constructor when should_stop said so.
  struct Stopped : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  // Bytes the cache of `set` takes with a vocabulary of V, keeping `top_k` entries of each row
  // (0 or >= V: all V, one float each; else a float and an id each).
  static int64_t bytes(const std::vector<EncodedExample>& set, int64_t V, int top_k = 0);

  // Computes the rows of every example of `set` (each must have a target) in fixed chunks of
  // at most `chunk` examples grouped by length: an example's rows never depend on the training
  // batches it is later drawn in, so a resumed run reads the numbers of the run it continues.
  // With 0 < top_k < V, keeps each row's top_k largest entries as they are (ties: the lower id;
  // `probabilities` is expected to have zeroed the rest, see keep_top_k). With several processes,
  // rank r computes every size()-th chunk and the ranks exchange them (every rank calls this,
  // with the same set). Throws std::invalid_argument if `probabilities` returns another shape
  // than [T*B, V], Stopped when `should_stop` (if any) returns true.
  TeacherCache(const std::vector<EncodedExample>& set, int64_t V, const Probabilities& probabilities,
               const Communicator& comm, const ShouldStop& should_stop = {}, int chunk = 64, int top_k = 0);

  // [T*B, V] for a batch of examples of the set (Batch::index): each example's cached rows (zero
  // outside the kept entries), and rows of zeros at padding (which the loss ignores).
  Tensor rows(const Batch& batch) const;

 private:
  void fill(const Batch& chunk, const Probabilities& probabilities);  // its examples' rows
  int64_t row_floats() const { return K_ ? 2 * K_ : V_; }

  int64_t V_;
  int64_t K_;                   // entries kept per row, 0 = all V
  std::vector<int64_t> first_;  // [examples + 1]: each example's first row in data_
  // [rows, V] or, with K_, [rows, 2K]: K probabilities, then their K ids as floats (exact below
  // 2^24), so that the ranks exchange them in one float sum.
  std::vector<float> data_;
};

// p [N, V]: the k largest entries of each row (ties: the lower id) renormalised to sum 1, every
// other entry 0 (the top-k distillation of Tan et al. 2019 and Marian/fairseq word-level KD).
// k = 0 or k >= V leaves p as it is; a row with a non-finite entry becomes all NaN (the loss then
// reports it) instead of a plausible distribution.
void keep_top_k(Tensor& p, int k);

// The ids of the k largest of row[0, V) (ties: the lower id), largest first, in ids[0, k); k <= V.
void top_k_ids(const float* row, int64_t V, int k, int32_t* ids);

}  // namespace attend
