// attend ops: matrix products (OpenBLAS sgemm underneath, never a hand-written GEMM).
#pragma once

#include "attend/autograd/variable.h"

namespace attend {

// a [M,K] (or [K,M] if trans_a) x b [K,N] (or [N,K] if trans_b) -> [M,N]
Var matmul(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);

// a [B,M,K] x b [B,K,N] -> [B,M,N], with the same transpose flags per batch item.
Var bmm(const Var& a, const Var& b, bool trans_a = false, bool trans_b = false);

// x [..., In] x w [In, Out] + bias [Out] -> [..., Out]. bias may be undefined (no bias).
Var linear(const Var& x, const Var& w, const Var& bias);

}  // namespace attend
