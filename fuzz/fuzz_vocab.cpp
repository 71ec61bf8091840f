// libFuzzer target: vocabulary files (src_vocab.json, tgt_vocab.json). Any input must load or
// throw std::runtime_error naming the file; a loaded vocabulary maps every token to its id.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "attend/models/translator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  attend::Vocab v;
  try {
    v = attend::parse_vocab(text, "fuzz/vocab.json");
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).rfind("fuzz/vocab.json", 0) != 0) __builtin_trap();
    return 0;
  }
  for (int i = 0; i < v.size(); ++i)
    if (v.id(v.token(i)) != i) __builtin_trap();
  return 0;
}
