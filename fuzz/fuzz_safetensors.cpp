// libFuzzer target: the safetensors loader, which reads weights that may come from anyone.
// Any input must either load or throw std::runtime_error; what loads must save and load again
// to the same tensors.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "attend/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
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
