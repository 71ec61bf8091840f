// libFuzzer target: what reads untrusted text besides TSV: plain line files (attend score,
// Moses-style corpora), diatheke's OSIS export (attend data bible), and BLEU/chrF over what was
// read. Any input must read or throw std::runtime_error naming its origin; scores stay in [0, 100].
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "attend/data/bible.h"
#include "attend/data/lines.h"
#include "attend/eval/bleu.h"
#include "attend/eval/chrf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    for (const attend::bible::Verse& v : attend::bible::parse_export(text, "fuzz.osis"))
      if (v.key.empty() || v.book < 0 || v.text.find('<') != std::string::npos) __builtin_trap();
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind("fuzz.osis", 0) != 0) __builtin_trap();
  }
  std::vector<std::string> lines;
  try {
    lines = attend::parse_lines(text, "fuzz.txt", {.max_line_bytes = 512});
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind("fuzz.txt", 0) != 0) __builtin_trap();
    return 0;
  }
  const std::vector<std::string> refs(lines.rbegin(), lines.rend());
  const double bleu = attend::corpus_bleu(lines, refs).score, chrf = attend::corpus_chrf(lines, refs).score;
  if (!(bleu >= 0.0 && bleu <= 100.0 + 1e-9) || !(chrf >= 0.0 && chrf <= 100.0 + 1e-9)) __builtin_trap();
  return 0;
}
