// attend eval: sequence-level scores.
#pragma once

#include <string>
#include <vector>

namespace attend {

using Tokens = std::vector<std::string>;

// Levenshtein distance (insertions, deletions, substitutions, each cost 1).
size_t edit_distance(const Tokens& a, const Tokens& b);

struct Scores {
  size_t sentences = 0;
  double exact_match = 0.0;     // share of outputs equal to one of their references
  double token_accuracy = 0.0;  // share of reference tokens matched at the same position (closest reference)
  double error_rate = 0.0;      // Σ edit distance to the closest reference / Σ its length (CER, PER)
};

// outputs[i] is compared with every reference in references[i] (at least one).
Scores score(const std::vector<Tokens>& outputs, const std::vector<std::vector<Tokens>>& references);

}  // namespace attend
