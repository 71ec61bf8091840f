// libFuzzer target: a model directory's config.json (and the model it describes, when small).
// Any input must parse or throw std::runtime_error naming the file.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "attend/attention/registry.h"
#include "attend/models/translator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  attend::ModelFileConfig c;
  try {
    c = attend::parse_model_config(text, "fuzz/config.json");
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).find("fuzz/config.json") == std::string::npos) __builtin_trap();
    return 0;
  }
  // Build the model when it is small: construction must accept every config that validated.
  attend::Rng rng(1);
  if (c.model.architecture == attend::Architecture::kRnn) {
    const attend::Seq2SeqConfig& m = c.model.rnn;
    if (m.hidden <= 64 && m.embedding <= 64 && m.attention.attention_dim <= 64 && m.encoder_size() <= 64 &&
        m.encoder_layers <= 3 && m.src_vocab <= 200 && m.tgt_vocab <= 200 &&
        (!attend::find_mechanism(m.attention.mechanism).option("window") || m.attention.option("window") <= 64))
      (void)c.model.build(rng)->parameters();
  } else {
    const attend::TransformerConfig& m = c.model.transformer;
    if (m.dim <= 64 && m.ffn <= 128 && m.encoder_layers <= 3 && m.decoder_layers <= 3 && m.max_length <= 256 &&
        m.src_vocab <= 200 && m.tgt_vocab <= 200)
      (void)c.model.build(rng)->parameters();
  }
  return 0;
}
