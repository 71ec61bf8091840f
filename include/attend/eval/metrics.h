// attend eval: sequence-level scores.
#pragma once

#include <string>
#include <unordered_map>
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

// Scores by input length (compare-mt's length buckets): upper bounds e_1 < ... < e_k give the
// buckets [0, e_1], [e_1 + 1, e_2], ..., [e_k + 1, no bound]; lengths[i] is input i's length
// (source tokens). Empty buckets are listed with 0 sentences. Bounds that are not increasing
// or not in [1, 1,000,000] throw std::invalid_argument naming them.
struct LengthBucket {
  size_t first = 0, last = 0;  // lengths first..last; last = 0 in the open last bucket
  Scores scores;
};
void check_length_bounds(const std::vector<int>& bounds);
std::vector<LengthBucket> score_by_length(const std::vector<size_t>& lengths, const std::vector<Tokens>& outputs,
                                          const std::vector<std::vector<Tokens>>& references,
                                          const std::vector<int>& bounds);

// Test data with one input per distinct source: lines that share a source are its several
// references (CMUdict lists every pronunciation of a word on its own line).
struct ReferenceSet {
  std::vector<std::string> sources;
  std::vector<std::vector<Tokens>> references;
};
template <class Examples, class Split>
ReferenceSet group_references(const Examples& examples, Split split_target);

// Corpus metrics (BLEU, chrF) score one output per test line against that line's own
// reference: outputs[i] is the output (its `text`) for set.sources[i], lines the examples the
// set was grouped from.
struct LineOutputs {
  std::vector<std::string> hypotheses, references;
};
template <class Examples, class Output>
LineOutputs outputs_per_line(const Examples& lines, const ReferenceSet& set, const std::vector<Output>& outputs);

template <class Examples, class Split>
ReferenceSet group_references(const Examples& examples, Split split_target) {
  ReferenceSet r;
  std::unordered_map<std::string, size_t> index;
  for (const auto& e : examples) {
    auto [it, fresh] = index.emplace(e.source, r.sources.size());
    if (fresh) {
      r.sources.push_back(e.source);
      r.references.emplace_back();
    }
    r.references[it->second].push_back(split_target(e.target));
  }
  return r;
}

template <class Examples, class Output>
LineOutputs outputs_per_line(const Examples& lines, const ReferenceSet& set, const std::vector<Output>& outputs) {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < set.sources.size(); ++i) index.emplace(set.sources[i], i);
  LineOutputs l;
  for (const auto& e : lines) {
    l.hypotheses.push_back(outputs.at(index.at(e.source)).text);
    l.references.push_back(e.target);
  }
  return l;
}

}  // namespace attend
