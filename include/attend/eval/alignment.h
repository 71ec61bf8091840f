// attend eval: measuring and exporting attention alignments.
#pragma once

#include <string>
#include <utility>
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
// The same pairs as numbers: {source position i, output position j} for each output j.
std::vector<std::pair<int, int>> hard_alignment(const AlignmentMatrix& weights, size_t outputs);

// Subword pieces grouped into words: a SentencePiece piece that starts with U+2581 ("▁")
// begins a word; every other piece continues the word before it.
struct WordGroups {
  std::vector<int> word_of_piece;  // [pieces]
  std::vector<std::string> words;  // the words' text, without the marker
};
WordGroups group_pieces(const std::vector<std::string>& pieces);
// One group per token (for tokenizers whose tokens are already the units shown).
WordGroups one_group_per_token(const std::vector<std::string>& tokens);

// A piece-level alignment [target pieces + extra rows (</s>)][source pieces] at the word level:
// [target words + the same extra rows][source words], weights summed over a word's source
// pieces and averaged over its target pieces (so that each row still sums to what it did).
AlignmentMatrix merge_subwords(const AlignmentMatrix& weights, const WordGroups& source, const WordGroups& target);

}  // namespace attend
