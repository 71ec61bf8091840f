// attend ops: the key/value cache of incremental decoding, and attention of one new query per
// sequence over it.
//
// Layout: keys and values [B, Hkv, capacity, D] (contiguous), lengths [B]: sequence b's cached
// positions are 0 .. lengths[b] - 1. Sequences may hold different lengths (prompts of different
// sizes, finished hypotheses).
#pragma once

#include <vector>

#include "attend/ops/sdpa.h"

namespace attend {

class KvCache {
 public:
  KvCache() = default;
  KvCache(int batch, int kv_heads, int capacity, int head_dim);

  // Appends k, v [B, Hkv, n, D] after each sequence's cached positions. counts[b] <= n says how
  // many of the n new positions of sequence b are real (empty: all n); the rest are ignored.
  // Throws std::invalid_argument (shapes) or std::length_error (capacity) naming the values.
  void append(const Tensor& k, const Tensor& v, const std::vector<int>& counts = {});
  // Sequence b continues from what sequence from[b] held; from.size() becomes the batch (beam
  // search keeps it, dropping finished sequences shrinks it).
  void reorder(const std::vector<int>& from);
  void clear();

  int batch() const { return B_; }
  int capacity() const { return capacity_; }
  const std::vector<int>& lengths() const { return lengths_; }
  const Tensor& keys() const { return k_; }    // [B, Hkv, capacity, D]
  const Tensor& values() const { return v_; }  // [B, Hkv, capacity, D]

 private:
  int B_ = 0, Hkv_ = 0, capacity_ = 0, D_ = 0;
  Tensor k_, v_;
  std::vector<int> lengths_;
};

// out [B, H, 1, D] for one query per sequence, q [B, H, 1, D], attending over the cached keys
// (the query is the newest position: bottom-right aligned). Honours scale, window_left,
// alibi_slopes and softcap (causal is implied; dropout and key_lengths are not allowed), and adds
// `bias` [B or 1, H or 1, 1, capacity] (one score per cache slot) when it is given. Long caches
// are split across threads. `lse` (optional) receives [B, H, 1].
Tensor sdpa_decode(const Tensor& q, const KvCache& cache, const SdpaOptions& options = {}, const Tensor& bias = {},
                   Tensor* lse = nullptr);

}  // namespace attend
