#include "attend/ops/embedding.h"

#include <cstring>
#include <stdexcept>

namespace attend {

Var embedding(const Var& table, const std::vector<int>& ids) {
  if (table.ndim() != 2) throw std::invalid_argument("embedding: table must be [V,E], got " + table.shape().str());
  const int64_t V = table.size(0), E = table.size(1), N = static_cast<int64_t>(ids.size());
  Tensor y = Tensor::empty(Shape{N, E});
  for (int64_t n = 0; n < N; ++n) {
    if (ids[n] < 0 || ids[n] >= V) {
      throw std::invalid_argument("embedding: id " + std::to_string(ids[n]) + " at position " + std::to_string(n) +
                                  " is outside the vocabulary of " + std::to_string(V));
    }
    std::memcpy(y.data() + n * E, table.value().data() + int64_t(ids[n]) * E, sizeof(float) * E);
  }
  return make_result(std::move(y), needs_grad({&table}), [table, ids, E](Node& out) {
    // forward: y[n] = table[ids[n]]  =>  dtable[ids[n]] += dy[n]
    float* dt = table.grad_ref().data();
    const float* dy = out.grad.data();
    for (size_t n = 0; n < ids.size(); ++n)
      for (int64_t e = 0; e < E; ++e) dt[int64_t(ids[n]) * E + e] += dy[n * E + e];
  });
}

}  // namespace attend
