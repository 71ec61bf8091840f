#include "attend/data/sentencepiece.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <stdexcept>
#include <unordered_map>

namespace attend {

namespace {

// The training sentences, handed to SentencePiece without a file.
class Sentences final : public sentencepiece::SentenceIterator {
 public:
  explicit Sentences(const std::vector<std::string>& s) : s_(s) {}
  bool done() const override { return i_ >= s_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return s_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& s_;
  size_t i_ = 0;
};

}  // namespace

void SentencePieceOptions::validate() const {
  if (vocab_size < 8 || vocab_size > 1000000)
    throw std::invalid_argument("--vocab-size must be in [8, 1000000], got " + std::to_string(vocab_size));
  if (type != "unigram" && type != "bpe")
    throw std::invalid_argument("--spm-type must be unigram or bpe, got '" + type + "'");
  if (!(character_coverage > 0.9f && character_coverage <= 1.0f))
    throw std::invalid_argument("character coverage must be in (0.9, 1], got " + std::to_string(character_coverage));
}

SentencePiece::SentencePiece(std::unique_ptr<sentencepiece::SentencePieceProcessor> p, std::string bytes)
    : processor_(std::move(p)), bytes_(std::move(bytes)) {}

SentencePiece::~SentencePiece() = default;

std::shared_ptr<const SentencePiece> SentencePiece::train(const std::vector<std::string>& sentences,
                                                          const SentencePieceOptions& options) {
  options.validate();
  if (sentences.empty()) throw std::invalid_argument("sentencepiece: no sentences to train on");
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", options.type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"num_threads", "1"},          // the same model for every thread count
      {"input_sentence_size", "0"},  // every sentence, none sampled
      {"shuffle_input_sentence", "false"},
      {"max_sentence_length", "65536"},
      {"minloglevel", "2"},  // no progress log on stderr
      {"hard_vocab_limit", "true"},
  };
  Sentences it(sentences);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(args, &it, &model);
  if (!status.ok())
    throw std::invalid_argument("sentencepiece: training a " + options.type + " model of " +
                                std::to_string(options.vocab_size) + " pieces on " + std::to_string(sentences.size()) +
                                " sentences failed: " + status.ToString());
  return from_bytes(model, "the model just trained");
}

std::shared_ptr<const SentencePiece> SentencePiece::from_bytes(const std::string& bytes, const std::string& origin) {
  auto p = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = p->LoadFromSerializedProto(bytes);
  if (!status.ok() || p->GetPieceSize() < 4)
    throw std::runtime_error(origin + ": not a SentencePiece model (" +
                             (status.ok() ? std::string("too few pieces") : status.ToString()) + ")");
  return std::shared_ptr<const SentencePiece>(new SentencePiece(std::move(p), bytes));
}

std::vector<std::string> SentencePiece::encode(const std::string& text) const {
  std::vector<std::string> pieces;
  const auto status = processor_->Encode(text, &pieces);
  if (!status.ok()) throw std::invalid_argument("sentencepiece: cannot encode the text: " + status.ToString());
  return pieces;
}

std::string SentencePiece::decode(const std::vector<std::string>& pieces) const {
  std::string text;
  const auto status = processor_->Decode(pieces, &text);
  if (!status.ok()) throw std::invalid_argument("sentencepiece: cannot decode the pieces: " + status.ToString());
  return text;
}

std::vector<std::string> SentencePiece::pieces() const {
  std::vector<std::string> out;
  for (int i = 0; i < processor_->GetPieceSize(); ++i)
    if (!processor_->IsControl(i) && !processor_->IsUnknown(i)) out.push_back(processor_->IdToPiece(i));
  return out;
}

}  // namespace attend
