// attend nn: modules own parameters and name them.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "attend/autograd/variable.h"

namespace attend {

struct NamedParameter {
  std::string name;  // dotted path, e.g. "encoder.fwd.w_ih"
  Var var;
};

class Module {
 public:
  virtual ~Module() = default;
  // Every parameter with its dotted name, always in the same order (checkpoints rely on it).
  std::vector<NamedParameter> parameters() const {
    std::vector<NamedParameter> out;
    collect("", out);
    return out;
  }
  virtual void collect(const std::string& prefix, std::vector<NamedParameter>& out) const = 0;
  // Inference in int8 from here on (ops/int8.h): the module and its children quantize the
  // weights of their affine products once, now, and multiply in int8 whenever no tape records
  // (so training through them stays exact). The fp32 weights stay, for saving and training.
  // Call it again after changing the weights.
  virtual void quantize() {}
  // After quantize(), for inference only: weights that only int8 products and lookups read give
  // up their fp32 copies (a quarter of the memory). parameters() then holds their values
  // dequantized (what an int8 model file stores) in copies, which writing does not change the
  // model through, and a tape recording through them throws.
  virtual void release_fp32() {}
  // How many numbers the parameters hold.
  int64_t parameter_count() const {
    int64_t n = 0;
    for (const auto& p : parameters()) n += p.var.value().numel();
    return n;
  }
};

// The error when something needs the fp32 weights of `what` (e.g. "Linear [512 x 256]") after
// Module::release_fp32 gave them up: a tape recording through them.
[[noreturn]] inline void throw_released(const std::string& what) {
  throw std::runtime_error(what +
                           ": its fp32 weights were released after int8 quantization (a model loaded for "
                           "int8 inference); load it in fp32 to record a tape through it");
}

// A trainable leaf of the given shape, zero-filled until an initializer runs.
inline Var parameter(const Shape& shape) { return Var(Tensor(shape), /*requires_grad=*/true); }

}  // namespace attend
