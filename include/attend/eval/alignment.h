// attend eval: measuring and exporting attention alignments.
#pragma once

#include <string>
#include <vector>

namespace attend {

// weights: one row per output step (a distribution over source positions).
using AlignmentMatrix = std::vector<std::vector<float>>;

struct AlignmentStats {
  double monotonicity = 0.0;  // share of steps whose argmax source position does not move backwards
  double entropy = 0.0;       // mean entropy of a step's weights, in nats (0 = all weight on one position)
  double diagonality = 0.0;   // share of attention mass within max(1, S/10) positions of the diagonal s = t·S/T
  size_t steps = 0;           // rows counted
};

// Statistics of one alignment; accumulate() adds another, weighted by its number of steps.
AlignmentStats alignment_stats(const AlignmentMatrix& weights);
void accumulate(AlignmentStats& total, const AlignmentStats& one);

// Hard alignment in Pharaoh format: "i-j" for each output position j and its argmax source
// position i, both 0-based, separated by spaces. Rows beyond `outputs` (e.g. </s>) are left out.
std::string pharaoh(const AlignmentMatrix& weights, size_t outputs);

}  // namespace attend
