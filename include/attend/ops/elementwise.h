// attend ops: element-wise arithmetic and activations.
//
// Binary ops broadcast as NumPy does (shapes aligned on the right, size-1 or missing dims
// stretched), e.g. [B,T,D] + [D], [B,T,D] * [B,1,D]. Backward sums over the stretched dims.
#pragma once

#include "attend/autograd/variable.h"

namespace attend {

Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var minimum(const Var& a, const Var& b);  // element-wise min; the gradient goes to the smaller (to a on ties)
Var scale(const Var& x, float factor);    // x * factor

Var tanh(const Var& x);
Var sigmoid(const Var& x);
Var relu(const Var& x);
Var exp(const Var& x);
Var log(const Var& x);  // log of a non-positive value is -inf/NaN, as in every framework

// The broadcast shape of a and b, or std::invalid_argument naming both.
Shape broadcast_shape(const Shape& a, const Shape& b, const char* op);

}  // namespace attend
