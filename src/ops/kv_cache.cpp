#include "attend/ops/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "sdpa_options.h"
#include "kernels/flash_attention.h"
#include "kernels/parallel.h"

namespace attend {

KvCache::KvCache(int batch, int kv_heads, int capacity, int head_dim)
    : B_(batch), Hkv_(kv_heads), capacity_(capacity), D_(head_dim), lengths_(batch, 0) {
  if (batch < 1 || kv_heads < 1 || capacity < 1 || head_dim < 1)
    throw std::invalid_argument("KvCache: batch, heads, capacity and head dim must be >= 1, got " +
                                std::to_string(batch) + ", " + std::to_string(kv_heads) + ", " +
                                std::to_string(capacity) + ", " + std::to_string(head_dim));
  k_ = Tensor(Shape{B_, Hkv_, capacity_, D_});
  v_ = Tensor(Shape{B_, Hkv_, capacity_, D_});
}

void KvCache::append(const Tensor& k, const Tensor& v, const std::vector<int>& counts) {
  const Shape& s = k.shape();
  if (s.ndim() != 4 || s[0] != B_ || s[1] != Hkv_ || s[3] != D_ || v.shape() != s)
    throw std::invalid_argument("KvCache::append: k " + s.str() + " and v " + v.shape().str() + " must both be [" +
                                std::to_string(B_) + ", " + std::to_string(Hkv_) + ", n, " + std::to_string(D_) + "]");
  const int n = static_cast<int>(s[2]);
  if (!counts.empty() && static_cast<int>(counts.size()) != B_)
    throw std::invalid_argument("KvCache::append: " + std::to_string(counts.size()) + " counts for a batch of " +
                                std::to_string(B_));
  for (int b = 0; b < B_; ++b) {
    const int c = counts.empty() ? n : counts[b];
    if (c < 0 || c > n)
      throw std::invalid_argument("KvCache::append: count " + std::to_string(c) + " outside [0, " + std::to_string(n) +
                                  "]");
    if (lengths_[b] + c > capacity_)
      throw std::length_error("KvCache::append: sequence " + std::to_string(b) + " would hold " +
                              std::to_string(lengths_[b] + c) + " positions, capacity is " + std::to_string(capacity_));
  }
  for (int b = 0; b < B_; ++b) {
    const int c = counts.empty() ? n : counts[b];
    for (int h = 0; h < Hkv_; ++h) {
      const int64_t src = (int64_t(b) * Hkv_ + h) * n * D_;
      const int64_t dst = ((int64_t(b) * Hkv_ + h) * capacity_ + lengths_[b]) * D_;
      std::memcpy(k_.data() + dst, k.data() + src, sizeof(float) * c * D_);
      std::memcpy(v_.data() + dst, v.data() + src, sizeof(float) * c * D_);
    }
    lengths_[b] += c;
  }
}

void KvCache::reorder(const std::vector<int>& from) {
  if (from.empty())
    throw std::invalid_argument("KvCache::reorder: no sequences to keep (batch of " + std::to_string(B_) + ")");
  for (int f : from)
    if (f < 0 || f >= B_)
      throw std::invalid_argument("KvCache::reorder: source " + std::to_string(f) + " outside [0, " +
                                  std::to_string(B_) + ")");
  const int B = static_cast<int>(from.size());
  // Dropping sequences (from strictly increasing, so from[b] >= b): compacted in place, as no
  // row is read after it is overwritten. Otherwise (beams) into new storage. Either way only the
  // cached positions of each head are copied, not the whole capacity.
  bool increasing = true;
  for (int b = 1; b < B && increasing; ++b) increasing = from[b] > from[b - 1];
  Tensor k = increasing ? k_ : Tensor::empty(Shape{B, Hkv_, capacity_, D_});
  Tensor v = increasing ? v_ : Tensor::empty(Shape{B, Hkv_, capacity_, D_});
  std::vector<int> lengths(B);
  for (int b = 0; b < B; ++b) {
    lengths[b] = lengths_[from[b]];
    if (increasing && from[b] == b) continue;
    for (int h = 0; h < Hkv_; ++h) {
      const int64_t dst = (int64_t(b) * Hkv_ + h) * capacity_ * D_,
                    src = (int64_t(from[b]) * Hkv_ + h) * capacity_ * D_;
      std::memcpy(k.data() + dst, k_.data() + src, sizeof(float) * lengths[b] * D_);
      std::memcpy(v.data() + dst, v_.data() + src, sizeof(float) * lengths[b] * D_);
    }
  }
  k_ = increasing ? k.narrow(0, B) : k, v_ = increasing ? v.narrow(0, B) : v, lengths_ = lengths, B_ = B;
}

void KvCache::clear() { std::fill(lengths_.begin(), lengths_.end(), 0); }

Tensor sdpa_decode(const Tensor& q, const KvCache& cache, const SdpaOptions& o, const Tensor& bias, Tensor* lse) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("sdpa_decode: " + m); };
  if (cache.batch() == 0) bad("empty cache");
  const Shape& ks = cache.keys().shape();
  const Shape& s = q.shape();
  if (s.ndim() != 4 || s[0] != ks[0] || s[2] != 1 || s[3] != ks[3] || s[1] % ks[1] != 0)
    bad("q " + s.str() + " must be [B, H, 1, D] for a cache of " + ks.str() + " (H a multiple of its heads)");
  if (o.dropout != 0.0f || !o.key_lengths.empty() || o.window_right >= 0)
    bad("dropout, key_lengths and window_right do not apply to decoding (the cache holds the lengths)");
  kernels::SdpaProblem p;
  p.B = static_cast<int>(s[0]), p.H = static_cast<int>(s[1]), p.Hkv = static_cast<int>(ks[1]);
  p.T = 1, p.S = static_cast<int>(ks[2]), p.D = static_cast<int>(s[3]);
  p.key_lengths = cache.lengths().data();
  p.bottom_right = true, p.causal = true;
  detail::set_shared_options(p, o, "sdpa_decode");
  detail::set_bias(p, bias, "sdpa_decode");  // [B or 1, H or 1, 1, capacity]
  // Chunks of 1024 keys (512 KiB of K and V at D = 64): long caches spread over the threads,
  // short ones stay one item per kv head.
  const int chunk = 1024;
  Tensor out = Tensor::empty(s), l = Tensor::empty(Shape{p.B, p.H, 1});
  Tensor partial = Tensor::empty(Shape{kernels::sdpa_decode_partial_floats(p, chunk)});
  Tensor scratch = Tensor::empty(Shape{kernels::num_threads(), kernels::sdpa_decode_scratch_floats(p, chunk)});
  kernels::sdpa_decode(p, q.data(), cache.keys().data(), cache.values().data(), out.data(), l.data(), chunk,
                       partial.data(), scratch.data());
  if (lse) *lse = l;
  return out;
}

}  // namespace attend
