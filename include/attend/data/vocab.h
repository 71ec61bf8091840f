// attend data: vocabularies and tokenizers.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "attend/data/sentencepiece.h"

namespace attend {

// Token <-> id. Ids 0..3 are always <pad> <unk> <s> </s>.
class Vocab {
 public:
  static constexpr int kPad = 0, kUnk = 1, kBos = 2, kEos = 3;
  Vocab();
  // From a token list that starts with the four specials; a duplicate token throws naming it.
  explicit Vocab(const std::vector<std::string>& tokens);
  int add(const std::string& token);       // id of token, added if new
  int id(const std::string& token) const;  // kUnk when unknown
  bool contains(const std::string& token) const { return index_.count(token) != 0; }
  const std::string& token(int id) const;
  int size() const { return static_cast<int>(tokens_.size()); }
  const std::vector<std::string>& tokens() const { return tokens_; }

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int> index_;
};

// How text becomes tokens. Stored in a model's config.json (a SentencePiece model in a file of
// the model directory beside it).
struct Tokenizer {
  enum class Kind { kChar, kSpace, kSentencePiece };
  Kind kind = Kind::kChar;
  bool lowercase = false;        // ASCII lower-casing before splitting
  bool collapse_spaces = false;  // trim and squeeze runs of white space to one space
  // kSentencePiece: how to train the model, and the model (trained, or loaded with a model
  // directory); split and join throw std::logic_error without it.
  SentencePieceOptions subword_options;
  std::shared_ptr<const SentencePiece> subwords;
  std::string normalize(const std::string& text) const;
  std::vector<std::string> split(const std::string& text) const;  // normalises first
  std::string join(const std::vector<std::string>& tokens) const;
};
Tokenizer::Kind parse_tokenizer(const std::string& name);  // "char" | "space" | "sentencepiece"
std::string to_string(Tokenizer::Kind kind);
void to_json(nlohmann::json& j, const Tokenizer& t);
void from_json(const nlohmann::json& j, Tokenizer& t);

}  // namespace attend
