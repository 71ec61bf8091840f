// attend kernels: the element-wise half of one GRU or LSTM step for one row, after the two
// products gi = x W_ih + b_ih and gh = h W_hh + b_hh. Raw pointers, no allocation. The cell ops
// (ops/rnn_cells.h) and the fused decoding step (models/seq2seq_decoder.cpp) both run these.
#pragma once

namespace attend::kernels {

// GRU (gates r, z, n): r, z = σ(gi + gh), n = tanh(gi_n + r ⊙ gh_n), h' = (1 - z) ⊙ n + z ⊙ h.
// saved [4H] receives r, z, n, gh_n (what the backward pass needs); h_out [H] may not alias h.
void gru_gates(const float* gi, const float* gh, const float* h, int H, float* saved, float* h_out);

// LSTM (gates i, f, g, o): gates [4H] holds gh on entry and the activated gates on exit;
// c' = σ(f) ⊙ c + σ(i) ⊙ tanh(g), h' = σ(o) ⊙ tanh(c'). tanh_c [H] receives tanh(c').
void lstm_gates(const float* gi, float* gates, const float* c, int H, float* c_out, float* tanh_c, float* h_out);

}  // namespace attend::kernels
