#include "attend/train/teacher_cache.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

namespace attend {

namespace {

// Rows an example takes: its target tokens and </s>.
int64_t rows_of(const EncodedExample& e) { return static_cast<int64_t>(e.tgt.size()) + 1; }

}  // namespace

int64_t TeacherCache::bytes(const std::vector<EncodedExample>& set, int64_t V) {
  if (V < 1) throw std::invalid_argument("TeacherCache: vocabulary of " + std::to_string(V) + " tokens");
  int64_t rows = 0;
  for (const EncodedExample& e : set) rows += rows_of(e);
  const int64_t per_row = V * static_cast<int64_t>(sizeof(float));
  if (rows > std::numeric_limits<int64_t>::max() / per_row) return std::numeric_limits<int64_t>::max();
  return rows * per_row;
}

TeacherCache::TeacherCache(const std::vector<EncodedExample>& set, int64_t V, const Probabilities& probabilities,
                           const Communicator& comm, const ShouldStop& should_stop, int chunk)
    : V_(V), first_(set.size() + 1, 0) {
  bytes(set, V);  // checks V
  for (size_t i = 0; i < set.size(); ++i) {
    if (set[i].tgt.empty())
      throw std::invalid_argument("TeacherCache: example " + std::to_string(i) + " has no target tokens");
    first_[i + 1] = first_[i] + rows_of(set[i]);
  }
  data_.assign(static_cast<size_t>(first_.back() * V), 0.0f);
  // Without an rng the grouping is a function of the lengths alone: the same on every rank and run.
  const std::vector<std::vector<int>> chunks = make_batches(set, chunk, nullptr);
  const size_t ranks = static_cast<size_t>(comm.size());
  for (size_t round = 0; round < chunks.size(); round += ranks) {
    if (round + static_cast<size_t>(comm.rank()) < chunks.size())
      fill(make_batch(set, chunks[round + static_cast<size_t>(comm.rank())]), probabilities);
    if (should_stop && should_stop())
      throw Stopped("stopped after " + std::to_string(std::min(round + ranks, chunks.size())) + " of " +
                    std::to_string(chunks.size()) + " chunks of the teachers' probabilities");
  }
  // Every row was written by exactly one rank and is zero on the others: the sum is exact.
  if (comm.size() > 1) comm.allreduce_sum(data_.data(), static_cast<int64_t>(data_.size()));
}

void TeacherCache::fill(const Batch& batch, const Probabilities& probabilities) {
  const Tensor p = probabilities(batch);  // [T*B, V]
  if (p.shape() != Shape{int64_t(batch.T) * batch.B, V_})
    throw std::invalid_argument("TeacherCache: the teachers' probabilities are " + p.shape().str() +
                                " for a batch of " + std::to_string(batch.B) + " x " + std::to_string(batch.T) +
                                " steps over " + std::to_string(V_) + " tokens");
  for (int b = 0; b < batch.B; ++b) {
    const int i = batch.index[b];
    for (int64_t t = 0; t < first_[i + 1] - first_[i]; ++t)
      std::memcpy(data_.data() + (first_[i] + t) * V_, p.data() + (t * batch.B + b) * V_, V_ * sizeof(float));
  }
}

Tensor TeacherCache::rows(const Batch& batch) const {
  Tensor out = Tensor::zeros(Shape{int64_t(batch.T) * batch.B, V_});
  for (int b = 0; b < batch.B; ++b) {
    const int i = batch.index[b];
    if (i < 0 || i + 1 >= static_cast<int>(first_.size()))
      throw std::invalid_argument("TeacherCache: example " + std::to_string(i) + " of a set of " +
                                  std::to_string(first_.size() - 1));
    const int64_t n = first_[i + 1] - first_[i];
    if (n > batch.T)
      throw std::invalid_argument("TeacherCache: example " + std::to_string(i) + " has " + std::to_string(n) +
                                  " target steps, the batch " + std::to_string(batch.T));
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(out.data() + (t * batch.B + b) * V_, data_.data() + (first_[i] + t) * V_, V_ * sizeof(float));
  }
  return out;
}

}  // namespace attend
