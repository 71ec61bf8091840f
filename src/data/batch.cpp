#include "attend/data/batch.h"

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace attend {

std::vector<EncodedExample> encode(const std::vector<Example>& examples, const Tokenizer& src_tok,
                                   const Vocab& src_vocab, const Tokenizer& tgt_tok, const Vocab& tgt_vocab,
                                   size_t* unknown) {
  std::vector<EncodedExample> out;
  out.reserve(examples.size());
  size_t unk = 0;
  for (const auto& e : examples) {
    EncodedExample x;
    for (const auto& t : src_tok.split(e.source)) {
      x.src.push_back(src_vocab.id(t));
      unk += x.src.back() == Vocab::kUnk;
    }
    for (const auto& t : tgt_tok.split(e.target)) x.tgt.push_back(tgt_vocab.id(t));
    out.push_back(std::move(x));
  }
  if (unknown) *unknown = unk;
  return out;
}

int Batch::target_tokens() const {
  return static_cast<int>(std::count_if(tgt_out.begin(), tgt_out.end(), [](int t) { return t != Vocab::kPad; }));
}

Batch make_batch(const std::vector<EncodedExample>& examples, const std::vector<int>& indices) {
  Batch b;
  b.B = static_cast<int>(indices.size());
  b.index = indices;
  bool targets = true;
  for (int i : indices) {
    const auto& e = examples.at(i);
    if (e.src.empty()) throw std::invalid_argument("make_batch: example " + std::to_string(i) + " has an empty source");
    b.S = std::max(b.S, static_cast<int>(e.src.size()));
    b.T = std::max(b.T, static_cast<int>(e.tgt.size()) + 1);
    targets = targets && !e.tgt.empty();
  }
  b.src.assign(size_t(b.S) * b.B, Vocab::kPad);
  for (int r = 0; r < b.B; ++r) {
    const auto& e = examples[indices[r]];
    b.src_lengths.push_back(static_cast<int>(e.src.size()));
    for (size_t t = 0; t < e.src.size(); ++t) b.src[t * b.B + r] = e.src[t];
  }
  if (!targets) {
    b.T = 0;
    return b;
  }
  b.tgt_in.assign(size_t(b.T) * b.B, Vocab::kPad);
  b.tgt_out.assign(size_t(b.T) * b.B, Vocab::kPad);
  for (int r = 0; r < b.B; ++r) {
    const auto& y = examples[indices[r]].tgt;
    b.tgt_in[r] = Vocab::kBos;
    for (size_t t = 0; t < y.size(); ++t) {
      b.tgt_in[(t + 1) * b.B + r] = y[t];
      b.tgt_out[t * b.B + r] = y[t];
    }
    b.tgt_out[y.size() * b.B + r] = Vocab::kEos;
  }
  return b;
}

std::vector<std::vector<int>> make_batches(const std::vector<EncodedExample>& examples, int batch_size, Rng* rng) {
  if (batch_size < 1)
    throw std::invalid_argument("make_batches: batch size must be >= 1, got " + std::to_string(batch_size));
  std::vector<int> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  if (rng)
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng->below(i)]);
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return examples[a].src.size() < examples[b].src.size(); });
  std::vector<std::vector<int>> batches;
  for (size_t i = 0; i < order.size(); i += batch_size)
    batches.emplace_back(order.begin() + i, order.begin() + std::min(order.size(), i + batch_size));
  if (rng)
    for (size_t i = batches.size(); i > 1; --i) std::swap(batches[i - 1], batches[rng->below(i)]);
  return batches;
}

std::vector<std::vector<int>> make_token_batches(const std::vector<EncodedExample>& examples, int64_t max_tokens,
                                                 Rng* rng) {
  if (max_tokens < 1)
    throw std::invalid_argument("make_token_batches: token budget must be >= 1, got " + std::to_string(max_tokens));
  std::vector<int> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  if (rng)
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng->below(i)]);
  auto tokens = [&](int i) { return static_cast<int64_t>(examples[i].tgt.size()) + 1; };  // + </s>
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return tokens(a) != tokens(b) ? tokens(a) < tokens(b) : examples[a].src.size() < examples[b].src.size();
  });
  std::vector<std::vector<int>> batches;
  std::vector<int> current;
  int64_t longest = 0;
  for (int i : order) {
    if (tokens(i) > max_tokens)
      throw std::invalid_argument("training example " + std::to_string(i + 1) + " has " + std::to_string(tokens(i)) +
                                  " target tokens with </s>, more than the batch budget of " +
                                  std::to_string(max_tokens) + " (--batch-tokens)");
    const int64_t next_longest = std::max(longest, tokens(i));
    if (!current.empty() && next_longest * static_cast<int64_t>(current.size() + 1) > max_tokens) {
      batches.push_back(std::move(current));
      current.clear();
      longest = 0;
    }
    current.push_back(i);
    longest = std::max(longest, tokens(i));
  }
  if (!current.empty()) batches.push_back(std::move(current));
  if (rng)
    for (size_t i = batches.size(); i > 1; --i) std::swap(batches[i - 1], batches[rng->below(i)]);
  return batches;
}

}  // namespace attend
