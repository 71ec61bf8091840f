#include "attend/data/vocab.h"

#include "../io/json_field.h"

#include <cctype>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace attend {

Vocab::Vocab() : Vocab(std::vector<std::string>{"<pad>", "<unk>", "<s>", "</s>"}) {}

Vocab::Vocab(const std::vector<std::string>& tokens) {
  static const char* kSpecials[] = {"<pad>", "<unk>", "<s>", "</s>"};
  for (int i = 0; i < 4; ++i) {
    if (static_cast<int>(tokens.size()) <= i || tokens[i] != kSpecials[i]) {
      throw std::invalid_argument(std::string("vocabulary: entry ") + std::to_string(i) + " must be " + kSpecials[i] +
                                  ", got " + (static_cast<int>(tokens.size()) > i ? "'" + tokens[i] + "'" : "nothing"));
    }
  }
  for (const auto& t : tokens) {
    if (index_.count(t)) throw std::invalid_argument("vocabulary: duplicate token '" + t + "'");
    index_[t] = static_cast<int>(tokens_.size());
    tokens_.push_back(t);
  }
}

int Vocab::add(const std::string& token) {
  auto it = index_.find(token);
  if (it != index_.end()) return it->second;
  index_[token] = static_cast<int>(tokens_.size());
  tokens_.push_back(token);
  return static_cast<int>(tokens_.size()) - 1;
}

int Vocab::id(const std::string& token) const {
  auto it = index_.find(token);
  return it == index_.end() ? kUnk : it->second;
}

const std::string& Vocab::token(int id) const {
  if (id < 0 || id >= size())
    throw std::invalid_argument("vocabulary: id " + std::to_string(id) + " outside [0, " + std::to_string(size()) +
                                ")");
  return tokens_[id];
}

std::string Tokenizer::normalize(const std::string& text) const {
  std::string out;
  out.reserve(text.size());
  bool pending_space = false;
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (lowercase && c < 128) c = static_cast<unsigned char>(std::tolower(c));
    if (collapse_spaces && std::isspace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ', pending_space = false;
    out += static_cast<char>(c);
  }
  return out;
}

std::vector<std::string> Tokenizer::split(const std::string& raw) const {
  const std::string text = normalize(raw);
  if (kind == Kind::kSentencePiece) {
    if (!subwords) throw std::logic_error("a sentencepiece tokenizer without its model");
    return subwords->encode(text);
  }
  std::vector<std::string> out;
  if (kind == Kind::kChar) {
    for (size_t i = 0; i < text.size();) {  // one UTF-8 code point per token
      const unsigned char c = static_cast<unsigned char>(text[i]);
      size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
      n = std::min(n, text.size() - i);
      out.push_back(text.substr(i, n));
      i += n;
    }
  } else {
    std::string cur;
    for (char c : text) {
      if (std::isspace(static_cast<unsigned char>(c))) {
        if (!cur.empty()) out.push_back(cur), cur.clear();
      } else {
        cur += c;
      }
    }
    if (!cur.empty()) out.push_back(cur);
  }
  return out;
}

std::string Tokenizer::join(const std::vector<std::string>& tokens) const {
  if (kind == Kind::kSentencePiece) {
    if (!subwords) throw std::logic_error("a sentencepiece tokenizer without its model");
    return subwords->decode(tokens);
  }
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (kind == Kind::kSpace && i) out += ' ';
    out += tokens[i];
  }
  return out;
}

Tokenizer::Kind parse_tokenizer(const std::string& name) {
  if (name == "char") return Tokenizer::Kind::kChar;
  if (name == "space") return Tokenizer::Kind::kSpace;
  if (name == "sentencepiece") return Tokenizer::Kind::kSentencePiece;
  throw std::invalid_argument("unknown tokenizer '" + name + "' (expected char, space or sentencepiece)");
}

std::string to_string(Tokenizer::Kind kind) {
  return kind == Tokenizer::Kind::kChar ? "char" : kind == Tokenizer::Kind::kSpace ? "space" : "sentencepiece";
}

void to_json(nlohmann::json& j, const Tokenizer& t) {
  j = {{"kind", to_string(t.kind)}, {"lowercase", t.lowercase}, {"collapse_spaces", t.collapse_spaces}};
  if (t.kind == Tokenizer::Kind::kSentencePiece) {
    j["vocab_size"] = t.subword_options.vocab_size;
    j["spm_type"] = t.subword_options.type;
  }
}

void from_json(const nlohmann::json& j, Tokenizer& t) {
  reject_unknown_fields(j, {"kind", "lowercase", "collapse_spaces", "vocab_size", "spm_type"}, "tokenizer");
  t.kind = parse_tokenizer(json_field<std::string>(j, "kind", "tokenizer"));
  t.lowercase = json_field<bool>(j, "lowercase", "tokenizer");
  t.collapse_spaces = json_field<bool>(j, "collapse_spaces", "tokenizer");
  if (t.kind == Tokenizer::Kind::kSentencePiece) {
    t.subword_options.vocab_size = json_field<int>(j, "vocab_size", "tokenizer");
    t.subword_options.type = json_field<std::string>(j, "spm_type", "tokenizer");
    t.subword_options.validate();
  }
}

}  // namespace attend
