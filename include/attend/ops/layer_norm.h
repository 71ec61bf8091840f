// attend ops: layer normalisation (Ba et al. 2016) over the last dimension.
//
// x [..., C], gamma [C], beta [C] -> y = (x - mean) / sqrt(var + eps) * gamma + beta, with the
// mean and (biased) variance of each row of C values.
#pragma once

#include "attend/autograd/variable.h"

namespace attend {

Var layer_norm(const Var& x, const Var& gamma, const Var& beta, float eps = 1e-5f);

}  // namespace attend
