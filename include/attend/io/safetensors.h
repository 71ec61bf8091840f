// attend io: the safetensors format (a JSON header, then raw little-endian tensors), so PyTorch
// users can read attend's weights with `safetensors.torch.load_file` and vice versa.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "attend/nn/module.h"

namespace attend {

// An I8 tensor (int8 weights written by attend quantize, io/int8_weights.h).
struct Int8Tensor {
  std::string name;
  Shape shape;
  std::vector<int8_t> values;
};

// Serialises the tensors (float32, then the int8 ones) with optional string metadata. Names must
// be unique.
std::string safetensors_bytes(const std::vector<NamedParameter>& tensors,
                              const std::map<std::string, std::string>& metadata = {},
                              const std::vector<Int8Tensor>& int8 = {});
void save_safetensors(const std::string& path, const std::vector<NamedParameter>& tensors,
                      const std::map<std::string, std::string>& metadata = {});  // atomic

// Parses and validates everything (header size bound, JSON, dtypes, shapes, offsets inside the
// file, no overlap, no overflow); any defect is a std::runtime_error naming `origin`. Tensors are
// F32; with `int8`, I8 tensors are read too (their values as floats) and named there.
std::map<std::string, Tensor> parse_safetensors(std::string_view bytes, const std::string& origin,
                                                std::map<std::string, std::string>* metadata = nullptr,
                                                std::set<std::string>* int8 = nullptr);
std::map<std::string, Tensor> load_safetensors(const std::string& path);

// Throws naming `origin`, the tensor and the element when a value is NaN or infinite.
void require_finite(const std::map<std::string, Tensor>& tensors, const std::string& origin);

// Copies loaded tensors into a module's parameters; missing, extra or mis-shaped tensors throw.
void assign_parameters(const std::vector<NamedParameter>& params, const std::map<std::string, Tensor>& tensors,
                       const std::string& origin);

}  // namespace attend
