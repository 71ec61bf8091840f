// attend: the one random number generator, seeded explicitly so runs are reproducible.
#pragma once

#include <array>
#include <cstdint>

namespace attend {

// xoshiro256** (Blackman & Vigna 2018), seeded through splitmix64. Its state is four words,
// so it can be saved in a checkpoint and restored exactly.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { seed_with(seed); }
  void seed_with(uint64_t seed);
  uint64_t next_u64() {  // inline: dropout draws one per two elements
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  float uniform();             // [0, 1)
  float normal();              // N(0, 1), Box-Muller
  uint64_t below(uint64_t n);  // uniform integer in [0, n)
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<uint64_t, 4> s_{};
};

}  // namespace attend
