#include "rnn_gates.h"

#include "vec_math.h"

namespace attend::kernels {

void gru_gates(const float* gi, const float* gh, const float* h, int H, float* saved, float* h_out) {
  float* s = saved;
  for (int k = 0; k < 2 * H; ++k) s[k] = gi[k] + gh[k];
  vsigmoid(s, s, 2 * H);  // r, z
  for (int k = 0; k < H; ++k) s[2 * H + k] = gi[2 * H + k] + s[k] * gh[2 * H + k];
  vtanh(s + 2 * H, s + 2 * H, H);  // n
  for (int k = 0; k < H; ++k) {
    s[3 * H + k] = gh[2 * H + k];
    h_out[k] = (1.0f - s[H + k]) * s[2 * H + k] + s[H + k] * h[k];
  }
}

void lstm_gates(const float* gi, float* gates, const float* c, int H, float* c_out, float* tanh_c, float* h_out) {
  float* g = gates;
  for (int k = 0; k < 4 * H; ++k) g[k] += gi[k];
  vsigmoid(g, g, 2 * H);                                                         // i, f
  vtanh(g + 2 * H, g + 2 * H, H);                                                // g
  vsigmoid(g + 3 * H, g + 3 * H, H);                                             // o
  for (int k = 0; k < H; ++k) c_out[k] = g[H + k] * c[k] + g[k] * g[2 * H + k];  // c' = f c + i g
  vtanh(c_out, tanh_c, H);
  for (int k = 0; k < H; ++k) h_out[k] = g[3 * H + k] * tanh_c[k];  // h' = o tanh(c')
}

}  // namespace attend::kernels
