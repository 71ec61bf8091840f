// attend ops: inverted dropout.
#pragma once

#include "attend/autograd/variable.h"
#include "attend/random.h"

namespace attend {

// Zeroes each element with probability p and scales the rest by 1/(1-p). Identity when p == 0.
// The mask comes from `rng`, so a run is reproducible from its seed.
Var dropout(const Var& x, float p, Rng& rng);

}  // namespace attend
