// attend kernels: scalar activations shared by the fused kernels.
#pragma once

#include <cmath>

namespace attend::kernels {

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }
inline float tanhf(float x) { return std::tanh(x); }

}  // namespace attend::kernels
