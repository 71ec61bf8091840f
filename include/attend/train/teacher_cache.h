// attend train --teacher: the teachers' next-token probabilities of every training example,
// computed once for the run instead of on every batch of every epoch. Each example keeps one row
// of V floats per target token and </s>, so the cache fits for G2P-sized vocabularies (107,774
// words x ~8 steps x 43 phones: 150 MB) and not for translation's; the trainer asks bytes()
// first and otherwise computes the teachers' rows batch by batch.
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

  // Bytes the cache of `set` takes with a vocabulary of V (one float per row and token).
  static int64_t bytes(const std::vector<EncodedExample>& set, int64_t V);

  // Computes the rows of every example of `set` (each must have a target) in fixed chunks of
  // at most `chunk` examples grouped by length: an example's rows never depend on the training
  // batches it is later drawn in, so a resumed run reads the numbers of the run it continues.
  // With several processes, rank r computes every size()-th chunk and the ranks exchange them
  // (every rank calls this, with the same set). Throws std::invalid_argument if `probabilities`
  // returns another shape than [T*B, V], Stopped when `should_stop` (if any) returns true.
  TeacherCache(const std::vector<EncodedExample>& set, int64_t V, const Probabilities& probabilities,
               const Communicator& comm, const ShouldStop& should_stop = {}, int chunk = 64);

  // [T*B, V] for a batch of examples of the set (Batch::index): each example's cached rows, and
  // rows of zeros at padding (which the loss ignores).
  Tensor rows(const Batch& batch) const;

 private:
  void fill(const Batch& chunk, const Probabilities& probabilities);  // its examples' rows

  int64_t V_;
  std::vector<int64_t> first_;  // [examples + 1]: each example's first row in data_
  std::vector<float> data_;     // [rows, V]
};

}  // namespace attend
