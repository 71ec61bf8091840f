// attend io: model weights stored in int8 (attend quantize).
//
// Every 2-D weight is written as an I8 tensor of its own shape with an F32 tensor
// "<name>.scale" that broadcasts over it, the weight being q * scale: [1, Out] for a layer's
// weight [In, Out] (one scale per output, as --precision int8 multiplies) and [V, 1] for an
// embedding table [V, E] (one per token, which also serves a tied output layer). Symmetric,
// |q| <= 127, 8 bits whatever CPU writes it. Vectors (biases, LayerNorm) stay F32. The file is
// about a quarter of the fp32 one. Loading gives the fp32 weights q * scale; --precision int8
// then quantizes the products' weights from those (recovering q: the same per-output rows), so
// the products are the fp32 model's int8 products, while the embeddings and the weights no
// product in int8 uses (an RNN encoder's) carry the rounding of storage too.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "attend/io/safetensors.h"

namespace attend {

struct StoredInt8 {
  std::vector<NamedParameter> f32;  // the vectors and the scales
  std::vector<Int8Tensor> i8;       // the 2-D weights
};
StoredInt8 quantize_for_storage(const std::vector<NamedParameter>& params);

// Replaces every I8 tensor (named in `int8`) and its scale by the fp32 weight q * scale. Throws
// std::runtime_error naming `origin`, the tensor and what is wrong: an I8 tensor that is not
// 2-D, a value of -128, a missing, I8, mis-shaped, negative or non-finite scale.
void dequantize_stored(std::map<std::string, Tensor>& tensors, const std::set<std::string>& int8,
                       const std::string& origin);

}  // namespace attend
