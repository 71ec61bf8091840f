// attend data: encoded examples and padded, time-major batches.
#pragma once

#include <vector>

#include "attend/data/tsv.h"
#include "attend/data/vocab.h"
#include "attend/random.h"

namespace attend {

struct EncodedExample {
  std::vector<int> src;  // source token ids (no specials)
  std::vector<int> tgt;  // target token ids (no specials); empty at inference
};

// Token ids of every example; unknown tokens become <unk> (counted in *unknown when given).
std::vector<EncodedExample> encode(const std::vector<Example>& examples, const Tokenizer& src_tok,
                                   const Vocab& src_vocab, const Tokenizer& tgt_tok, const Vocab& tgt_vocab,
                                   size_t* unknown = nullptr);

// A padded batch. All id arrays are time-major: element [t * B + b] is step t of sequence b.
struct Batch {
  int B = 0, S = 0, T = 0;
  std::vector<int> src;          // [S*B]
  std::vector<int> src_lengths;  // [B]
  std::vector<int> tgt_in;       // [T*B]: <s> y_1 ... y_n, then <pad>
  std::vector<int> tgt_out;      // [T*B]: y_1 ... y_n </s>, then <pad>
  std::vector<int> index;        // [B]: position of each row in the example list
  int target_tokens() const;     // non-pad entries of tgt_out
};

// Rows `indices` of `examples` as a batch (targets only when every example has one).
Batch make_batch(const std::vector<EncodedExample>& examples, const std::vector<int>& indices);

// Groups examples of similar source length into batches of at most batch_size; with an rng the
// order inside equal lengths and the order of the batches are shuffled (training), without it
// the grouping is deterministic by length (evaluation).
std::vector<std::vector<int>> make_batches(const std::vector<EncodedExample>& examples, int batch_size, Rng* rng);
// Batches of at most `max_tokens` padded target tokens (rows x the longest target + 1, for
// </s>), filled from examples sorted by target then source length (similar lengths, little
// padding); with an rng, ties and the batch order are shuffled. Every example is in exactly one
// batch; an example longer than max_tokens by itself throws std::invalid_argument naming it.
std::vector<std::vector<int>> make_token_batches(const std::vector<EncodedExample>& examples, int64_t max_tokens,
                                                 Rng* rng);

}  // namespace attend
