// attend kernels: counter-based random numbers: a draw is a hash of (seed, index), so it can be
// recomputed anywhere (forward and backward, any tiling, any thread) instead of stored.
#pragma once

#include <cstdint>

namespace attend::kernels {

// splitmix64's finaliser (Steele et al. 2014): a bijection of 64-bit words that mixes every
// input bit into every output bit.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The index-th 64-bit draw of the stream `seed` (splitmix64's sequence).
inline uint64_t counter_draw(uint64_t seed, uint64_t index) {
  return mix64(seed + 0x9e3779b97f4a7c15ULL * (index + 1));
}

}  // namespace attend::kernels
