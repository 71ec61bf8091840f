// attend cli: a model measured on a test file: what `attend eval` prints and `attend report`
// shows on its model card.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "attend/eval/alignment.h"
#include "attend/eval/bleu.h"
#include "attend/eval/chrf.h"
#include "attend/eval/metrics.h"
#include "attend/models/translator.h"

namespace attend::cli {

struct SentenceScores {
  BleuScore bleu;
  ChrfScore chrf;
};

// BLEU and chrF of one book of a .keys file.
struct BookScores {
  std::string book;
  size_t lines = 0;
  SentenceScores scores;
};

struct EvalRequest {
  std::string test;                // source<TAB>reference per line; repeated sources are several references
  std::string keys;                // optional: the verse key of every line (attend data bible), for per-book scores
  std::vector<int> length_bounds;  // optional: scores by source length (in the model's tokens), metrics.h
  DecodeOptions decode;
  int batch = 64;
  int64_t batch_tokens = 0;
};

struct EvalReport {
  Scores s;                             // exact match, token accuracy, token error rate
  bool g2p = false;                     // a G2P model: sentence errors are its WER, token errors its PER
  std::optional<SentenceScores> mt;     // models whose outputs are sentences (word or subword targets)
  std::vector<BookScores> books;        // with keys
  std::vector<LengthBucket> by_length;  // with length bounds
  AlignmentStats alignment;             // of every output's attention
  size_t unknown = 0;                   // source tokens the model did not know
  std::vector<std::pair<std::string, std::string>> wrong;  // (source, output) of the inputs it got wrong
};

// Decodes every source of the test file and scores the outputs. An input the model cannot
// translate is an error (std::runtime_error naming the file and source): a wrong score would be
// worse than none. A keys file is read before decoding, so a wrong one wastes no time.
EvalReport evaluate_test(const Translator& tr, const EvalRequest& request);

}  // namespace attend::cli
