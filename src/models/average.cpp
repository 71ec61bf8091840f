#include "attend/models/average.h"

#include <stdexcept>

#include "attend/models/translator.h"

namespace attend {

namespace {

std::string subwords_of(const Tokenizer& t) { return t.subwords ? t.subwords->bytes() : std::string(); }

// What must agree for two directories to be checkpoints of one model: "" if they do.
std::string difference(const Translator& a, const Translator& b) {
  if (a.model().config_json() != b.model().config_json()) return "the model settings differ";
  if (nlohmann::json(a.source_tokenizer()) != nlohmann::json(b.source_tokenizer()) ||
      nlohmann::json(a.target_tokenizer()) != nlohmann::json(b.target_tokenizer()))
    return "the tokenizers differ";
  if (a.source_vocab().tokens() != b.source_vocab().tokens() || a.target_vocab().tokens() != b.target_vocab().tokens())
    return "the vocabularies differ";
  if (subwords_of(a.source_tokenizer()) != subwords_of(b.source_tokenizer()) ||
      subwords_of(a.target_tokenizer()) != subwords_of(b.target_tokenizer()))
    return "the SentencePiece models differ";
  const auto pa = a.model().parameters(), pb = b.model().parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    if (pa[i].name != pb[i].name || pa[i].var.value().shape() != pb[i].var.value().shape())
      return "weight " + pa[i].name + " differs in name or shape";
  return "";
}

}  // namespace

void average_checkpoints(const std::vector<std::string>& dirs, const std::string& out) {
  if (dirs.empty()) throw std::invalid_argument("average: no model directories");
  // In fp32 whatever the directories store: the average is written into the first model's
  // weights, which an int8 load would not keep (Translator::load).
  Translator first = Translator::load(dirs[0], Precision::kFp32);
  const std::vector<NamedParameter> params = first.model().parameters();
  std::vector<std::vector<double>> sum(params.size());
  for (size_t p = 0; p < params.size(); ++p) {
    const Tensor& v = params[p].var.value();
    sum[p].assign(v.data(), v.data() + v.numel());
  }
  for (size_t d = 1; d < dirs.size(); ++d) {
    const Translator other = Translator::load(dirs[d], Precision::kFp32);
    if (const std::string why = difference(first, other); !why.empty())
      throw std::runtime_error(dirs[d] + ": not a checkpoint of the same model as " + dirs[0] + " (" + why + ")");
    const std::vector<NamedParameter> theirs = other.model().parameters();
    for (size_t p = 0; p < params.size(); ++p) {
      const float* x = theirs[p].var.value().data();
      for (size_t i = 0; i < sum[p].size(); ++i) sum[p][i] += x[i];
    }
  }
  std::vector<NamedParameter> out_params = params;  // Vars share their nodes: writing these writes the model's
  for (size_t p = 0; p < out_params.size(); ++p) {
    float* v = out_params[p].var.value().data();
    for (size_t i = 0; i < sum[p].size(); ++i) v[i] = static_cast<float>(sum[p][i] / double(dirs.size()));
  }
  first.save(out);  // weights only: the loaded model's inference caches are not saved
}

}  // namespace attend
