// attend ops: fused recurrent cells (one op per time step instead of a dozen small ones).
//
// The input projection gi = x W_ih + b_ih is computed outside (by `linear`), so an encoder can
// project every time step with one large GEMM and only the recurrent part runs step by step.
// `valid` (optional, [B] of 0/1) marks the rows whose sequence has a token at this step; the
// others keep their previous state unchanged (padded batches with lengths).
#pragma once

#include "attend/autograd/variable.h"

namespace attend {

// GRU (Cho et al. 2014; gate order r, z, n as in PyTorch):
//   r = σ(gi_r + h W_hr + b_hr), z = σ(gi_z + h W_hz + b_hz), n = tanh(gi_n + r ⊙ (h W_hn + b_hn)),
//   h' = (1 - z) ⊙ n + z ⊙ h
// gi [B,3H], h [B,H], w_hh [H,3H], b_hh [3H] -> h' [B,H]
Var gru_cell(const Var& gi, const Var& h, const Var& w_hh, const Var& b_hh, const Tensor& valid = Tensor());

// LSTM (Hochreiter & Schmidhuber 1997; gate order i, f, g, o as in PyTorch):
//   [i f g o] = gi + h W_hh + b_hh;  c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g);  h' = σ(o) ⊙ tanh(c')
// gi [B,4H], h [B,H], c [B,H], w_hh [H,4H], b_hh [4H] -> [2,B,H] holding h' then c'
// (take them apart with select(out, 0) and select(out, 1)).
Var lstm_cell(const Var& gi, const Var& h, const Var& c, const Var& w_hh, const Var& b_hh,
              const Tensor& valid = Tensor());

}  // namespace attend
