#include "attend/decode/ensemble.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/softmax.h"
#include "kernels/vec_math.h"

namespace attend {

EnsembleDecoder::EnsembleDecoder(std::vector<std::unique_ptr<StepDecoder>> members) : members_(std::move(members)) {
  if (members_.empty()) throw std::invalid_argument("EnsembleDecoder: no members");
}

NextTokenScores EnsembleDecoder::step(const std::vector<int>& prev) {
  NextTokenScores first = members_[0]->step(prev);
  const int64_t N = first.logits.size(0), V = first.logits.size(1);
  // acc = log sum_m p_m, by a running log-add of each member's log-softmax.
  Tensor acc = Tensor::empty(Shape{N, V}), lp = Tensor::empty(Shape{N, V});
  kernels::softmax_rows(first.logits.data(), nullptr, N, 1, V, acc.data(), /*log_output=*/true);
  for (size_t m = 1; m < members_.size(); ++m) {
    const Tensor logits = members_[m]->step(prev).logits;
    if (logits.shape() != first.logits.shape())
      throw std::invalid_argument("ensemble: member " + std::to_string(m + 1) + " scores " + logits.shape().str() +
                                  ", the first " + first.logits.shape().str());
    kernels::softmax_rows(logits.data(), nullptr, N, 1, V, lp.data(), /*log_output=*/true);
    // vlogaddexp takes finite or -inf values: a NaN of either side is put back after it.
    std::vector<int64_t> nan;
    for (int64_t i = 0; i < N * V; ++i)
      if (std::isnan(acc.data()[i]) || std::isnan(lp.data()[i])) nan.push_back(i);
    kernels::vlogaddexp(acc.data(), lp.data(), acc.data(), N * V);
    for (int64_t i : nan) acc.data()[i] = std::numeric_limits<float>::quiet_NaN();
  }
  const float log_m = std::log(static_cast<float>(members_.size()));
  for (int64_t i = 0; i < N * V; ++i) acc.data()[i] -= log_m;
  first.logits = acc;
  return first;
}

void EnsembleDecoder::reorder(const std::vector<int>& parents) {
  for (auto& m : members_) m->reorder(parents);
}

bool EnsembleDecoder::keep(const std::vector<int>& rows) {
  // All or none: a member that kept fewer rows than another would step other sentences.
  int kept = 0;
  for (auto& m : members_) kept += m->keep(rows) ? 1 : 0;
  if (kept != 0 && kept != static_cast<int>(members_.size()))
    throw std::runtime_error("ensemble: " + std::to_string(kept) + " of " + std::to_string(members_.size()) +
                             " members dropped finished rows, the others cannot");
  return kept != 0;
}

int EnsembleDecoder::max_steps() const {
  int steps = members_[0]->max_steps();
  for (const auto& m : members_) steps = std::min(steps, m->max_steps());
  return steps;
}

}  // namespace attend
