// libFuzzer target: the TSV reader and the tokenizers and vocabularies built from what it reads
// (training and test files come from users). Any input must read or throw std::runtime_error
// naming the file and line.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "attend/data/batch.h"
#include "attend/data/tsv.h"
#include "attend/data/vocab.h"
#include "attend/eval/metrics.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<attend::Example> examples;
  try {
    examples = attend::parse_tsv(text, "fuzz.tsv", {.max_line_bytes = 256, .allow_empty = true});
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind("fuzz.tsv", 0) != 0) __builtin_trap();
    return 0;
  }
  for (auto kind : {attend::Tokenizer::Kind::kChar, attend::Tokenizer::Kind::kSpace}) {
    const attend::Tokenizer tok{kind, /*lowercase=*/true, /*collapse_spaces=*/true};
    attend::Vocab src, tgt;
    for (const auto& e : examples) {
      for (const auto& t : tok.split(e.source)) src.add(t);
      for (const auto& t : tok.split(e.target)) tgt.add(t);
      if (tok.split(tok.join(tok.split(e.source))) != tok.split(e.source)) __builtin_trap();
    }
    const auto encoded = attend::encode(examples, tok, src, tok, tgt);
    const attend::ReferenceSet refs =
        attend::group_references(examples, [&](const std::string& s) { return tok.split(s); });
    std::vector<attend::Tokens> hyps(refs.sources.size());
    (void)attend::score(hyps, refs.references);
    (void)encoded;
  }
  return 0;
}
