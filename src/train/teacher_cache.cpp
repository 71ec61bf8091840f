#include "attend/train/teacher_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "../kernels/parallel.h"

namespace attend {

namespace {

// Rows an example takes: its target tokens and </s>.
int64_t rows_of(const EncodedExample& e) { return static_cast<int64_t>(e.tgt.size()) + 1; }

// Entries kept per row: 0 (all V) unless 0 < top_k < V. Ids travel as floats, exact below 2^24.
int64_t kept(int64_t V, int top_k) {
  if (V < 1) throw std::invalid_argument("TeacherCache: vocabulary of " + std::to_string(V) + " tokens");
  if (top_k < 0) throw std::invalid_argument("TeacherCache: top_k " + std::to_string(top_k) + " is negative");
  if (top_k == 0 || top_k >= V) return 0;
  if (V > (int64_t{1} << 24))
    throw std::invalid_argument("TeacherCache: top_k needs a vocabulary below 2^24 tokens, got " + std::to_string(V));
  return top_k;
}

}  // namespace

void top_k_ids(const float* row, int64_t V, int k, int32_t* ids) {
  // ids[0, n) sorted by (value desc, id asc); a later id with an equal value goes after.
  int n = 0;
  float worst = 0.0f;  // row[ids[k - 1]] once n == k: what a new entry must beat
  for (int64_t v = 0; v < V; ++v) {
    const float x = row[v];
    if (n == k && !(x > worst)) continue;
    int j = n < k ? n++ : k - 1;
    for (; j > 0 && row[ids[j - 1]] < x; --j) ids[j] = ids[j - 1];
    ids[j] = static_cast<int32_t>(v);
    if (n == k) worst = row[ids[k - 1]];
  }
}

void keep_top_k(Tensor& p, int k) {
  if (p.shape().ndim() != 2)
    throw std::invalid_argument("keep_top_k: probabilities " + p.shape().str() + ", not [N, V]");
  const int64_t N = p.shape()[0], V = p.shape()[1];
  if (k <= 0 || k >= V) return;
  kernels::parallel_for(
      N,
      [&](int64_t n, int) {
        float* row = p.data() + n * V;
        std::vector<int32_t> ids(static_cast<size_t>(k));
        std::vector<float> values(static_cast<size_t>(k));
        float sum = 0.0f;
        bool finite = true;
        for (int64_t v = 0; v < V; ++v) finite = finite && std::isfinite(row[v]);
        if (finite) top_k_ids(row, V, k, ids.data());
        for (int i = 0; finite && i < k; ++i) sum += values[i] = row[ids[i]];
        if (!finite || !(sum > 0.0f)) return std::fill(row, row + V, std::numeric_limits<float>::quiet_NaN());
        std::fill(row, row + V, 0.0f);
        for (int i = 0; i < k; ++i) row[ids[i]] = values[i] / sum;
      },
      static_cast<double>(N) * V * 2);
}

int64_t TeacherCache::bytes(const std::vector<EncodedExample>& set, int64_t V, int top_k) {
  const int64_t K = kept(V, top_k);
  int64_t rows = 0;
  for (const EncodedExample& e : set) rows += rows_of(e);
  const int64_t per_row = (K ? 2 * K : V) * static_cast<int64_t>(sizeof(float));
  if (rows > std::numeric_limits<int64_t>::max() / per_row) return std::numeric_limits<int64_t>::max();
  return rows * per_row;
}

TeacherCache::TeacherCache(const std::vector<EncodedExample>& set, int64_t V, const Probabilities& probabilities,
                           const Communicator& comm, const ShouldStop& should_stop, int chunk, int top_k)
    : V_(V), K_(kept(V, top_k)), first_(set.size() + 1, 0) {
  for (size_t i = 0; i < set.size(); ++i) {
    if (set[i].tgt.empty())
      throw std::invalid_argument("TeacherCache: example " + std::to_string(i) + " has no target tokens");
    first_[i + 1] = first_[i] + rows_of(set[i]);
  }
  data_.assign(static_cast<size_t>(first_.back() * row_floats()), 0.0f);
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
  std::vector<int32_t> ids(static_cast<size_t>(K_));
  for (int b = 0; b < batch.B; ++b) {
    const int i = batch.index[b];
    for (int64_t t = 0; t < first_[i + 1] - first_[i]; ++t) {
      const float* row = p.data() + (t * batch.B + b) * V_;
      float* dst = data_.data() + (first_[i] + t) * row_floats();
      if (!K_) {
        std::memcpy(dst, row, V_ * sizeof(float));
        continue;
      }
      top_k_ids(row, V_, static_cast<int>(K_), ids.data());
      for (int64_t j = 0; j < K_; ++j) dst[j] = row[ids[j]], dst[K_ + j] = static_cast<float>(ids[j]);
    }
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
    for (int64_t t = 0; t < n; ++t) {
      float* row = out.data() + (t * batch.B + b) * V_;
      const float* src = data_.data() + (first_[i] + t) * row_floats();
      if (!K_) std::memcpy(row, src, V_ * sizeof(float));
      for (int64_t j = 0; j < K_; ++j) row[static_cast<int64_t>(src[K_ + j])] = src[j];
    }
  }
  return out;
}

}  // namespace attend
