// attend ops: embedding lookup.
#pragma once

#include <vector>

#include "attend/autograd/variable.h"

namespace attend {

// table [V,E], ids (N values in [0, V)) -> [N,E]. An id out of range throws with its value.
Var embedding(const Var& table, const std::vector<int>& ids);

}  // namespace attend
