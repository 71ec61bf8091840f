// attend io: the safetensors format (a JSON header, then raw little-endian tensors), so PyTorch
// users can read attend's weights with `safetensors.torch.load_file` and vice versa.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "attend/nn/module.h"

namespace attend {

// Serialises the tensors (float32) with optional string metadata. Names must be unique.
std::string safetensors_bytes(const std::vector<NamedParameter>& tensors,
                              const std::map<std::string, std::string>& metadata = {});
void save_safetensors(const std::string& path, const std::vector<NamedParameter>& tensors,
                      const std::map<std::string, std::string>& metadata = {});  // atomic

// Parses and validates everything (header size bound, JSON, dtypes, shapes, offsets inside the
// file, no overlap, no overflow); any defect is a std::runtime_error naming `origin`.
std::map<std::string, Tensor> parse_safetensors(std::string_view bytes, const std::string& origin,
                                                std::map<std::string, std::string>* metadata = nullptr);
std::map<std::string, Tensor> load_safetensors(const std::string& path);

// Throws naming `origin`, the tensor and the element when a value is NaN or infinite.
void require_finite(const std::map<std::string, Tensor>& tensors, const std::string& origin);

// Copies loaded tensors into a module's parameters; missing, extra or mis-shaped tensors throw.
void assign_parameters(const std::vector<NamedParameter>& params, const std::map<std::string, Tensor>& tensors,
                       const std::string& origin);

}  // namespace attend
