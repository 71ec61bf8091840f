// attend ops: reductions to a scalar.
#pragma once

#include "attend/autograd/variable.h"

namespace attend {

Var sum(const Var& x);   // -> [] (one value)
Var mean(const Var& x);  // -> []

}  // namespace attend
