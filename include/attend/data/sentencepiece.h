// attend data: subword units by SentencePiece (Kudo & Richardson 2018; Debian's
// libsentencepiece-dev): a unigram language model (Kudo 2018) or BPE over raw text, so that
// detokenisation is exact and nothing is preprocessed by hand.
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace attend {

struct SentencePieceOptions {
  int vocab_size = 8000;         // pieces, including <unk>, <s> and </s>
  std::string type = "unigram";  // "unigram" or "bpe"
  float character_coverage = 1.0f;
  void validate() const;  // throws std::invalid_argument naming the bad field
};

class SentencePiece {
 public:
  // Trains on `sentences` (deterministic: one thread, no sampling, no shuffling). Throws
  // std::invalid_argument for bad options or too little text for the vocabulary size (with
  // SentencePiece's reason).
  static std::shared_ptr<const SentencePiece> train(const std::vector<std::string>& sentences,
                                                    const SentencePieceOptions& options);
  // A model as SentencePiece serialises it (a .model file); throws std::runtime_error naming
  // `origin` when it is not one.
  static std::shared_ptr<const SentencePiece> from_bytes(const std::string& bytes, const std::string& origin);
  ~SentencePiece();

  std::vector<std::string> encode(const std::string& text) const;    // text -> pieces ("▁the", "re")
  std::string decode(const std::vector<std::string>& pieces) const;  // pieces -> text, exactly
  // The pieces a model can produce besides <unk>, in the model's order (the vocabulary).
  std::vector<std::string> pieces() const;
  const std::string& bytes() const { return bytes_; }  // the serialised model

 private:
  SentencePiece(std::unique_ptr<sentencepiece::SentencePieceProcessor> p, std::string bytes);
  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::string bytes_;
};

}  // namespace attend
