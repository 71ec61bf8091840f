#include "attend/ops/relative_positions.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace attend {

namespace {
// The table column of query t and key s.
inline int64_t column(int t, int s, int K) { return std::clamp(s - t, -K, K) + K; }

void check_table(const Shape& table, const char* who) {
  if (table.ndim() != 2 || table[1] % 2 != 1)
    throw std::invalid_argument(std::string(who) + ": table must be [H, 2K+1], got " + table.str());
}
}  // namespace

Var relative_position_bias(const Var& table, int T, int S) {
  check_table(table.shape(), "relative_position_bias");
  if (T < 0 || S < 0 || T > (1 << 16) || S > (1 << 16))
    throw std::invalid_argument("relative_position_bias: lengths must be in [0, 65536], got T = " + std::to_string(T) +
                                ", S = " + std::to_string(S));
  const int64_t H = table.size(0), W = table.size(1);
  const int K = static_cast<int>(W / 2);
  Tensor y = Tensor::empty(Shape{1, H, T, S});
  const float* tab = table.value().data();
  float* out = y.data();
  for (int64_t h = 0; h < H; ++h)
    for (int t = 0; t < T; ++t)
      for (int s = 0; s < S; ++s) *out++ = tab[h * W + column(t, s, K)];
  return make_result(std::move(y), needs_grad({&table}), [table, T, S, H, W, K](Node& node) {
    // forward: y[h,t,s] = table[h, c(t,s)]  =>  dtable[h, c(t,s)] += dy[h,t,s]
    float* dt = table.grad_ref().data();
    const float* dy = node.grad.data();
    for (int64_t h = 0; h < H; ++h)
      for (int t = 0; t < T; ++t)
        for (int s = 0; s < S; ++s) dt[h * W + column(t, s, K)] += *dy++;
  });
}

Tensor relative_position_bias_last(const Tensor& table, const std::vector<int>& lengths, int capacity) {
  check_table(table.shape(), "relative_position_bias_last");
  const int64_t H = table.size(0), W = table.size(1);
  const int K = static_cast<int>(W / 2), B = static_cast<int>(lengths.size());
  Tensor y = Tensor::empty(Shape{B, H, 1, capacity});
  float* out = y.data();
  for (int b = 0; b < B; ++b) {
    if (lengths[b] < 1 || lengths[b] > capacity)
      throw std::invalid_argument("relative_position_bias_last: length " + std::to_string(lengths[b]) + " of row " +
                                  std::to_string(b) + " outside [1, capacity " + std::to_string(capacity) + "]");
    const int t = lengths[b] - 1;
    for (int64_t h = 0; h < H; ++h)
      for (int s = 0; s < capacity; ++s) *out++ = table.data()[h * W + column(t, s, K)];
  }
  return y;
}

}  // namespace attend
