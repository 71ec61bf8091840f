// libFuzzer target: the safetensors loader, which reads weights that may come from anyone.
// Any input must either load or throw std::runtime_error; what loads must save and load again
// to the same tensors. Files with int8 weights (attend quantize) go through the I8 reader and
// their dequantization the same way.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <set>
#include <stdexcept>
#include <string>

#include "attend/io/int8_weights.h"
#include "attend/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  try {
    std::set<std::string> int8;
    auto stored = attend::parse_safetensors(bytes, "fuzz.safetensors", nullptr, &int8);
    attend::dequantize_stored(stored, int8, "fuzz.safetensors");
  } catch (const std::runtime_error&) {}
  std::map<std::string, attend::Tensor> tensors;
  try {
    tensors = attend::parse_safetensors(bytes, "fuzz.safetensors");
  } catch (const std::runtime_error&) {
    return 0;
  }
  std::vector<attend::NamedParameter> named;
  for (auto& [name, t] : tensors) named.push_back({name, attend::Var(t)});
  const auto again = attend::parse_safetensors(attend::safetensors_bytes(named), "round trip");
  if (again.size() != tensors.size()) __builtin_trap();
  for (const auto& [name, t] : tensors) {  // bit for bit: NaN payloads survive too
    const attend::Tensor& u = again.at(name);
    if (u.shape() != t.shape() || std::memcmp(u.data(), t.data(), t.numel() * sizeof(float)) != 0) __builtin_trap();
  }
  return 0;
}
