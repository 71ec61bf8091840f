#include "attention_scores.h"

#include <algorithm>

#include "vec_math.h"

namespace attend::kernels {

void additive_scores_forward(const float* qp, const float* kp, const float* v, int64_t B, int64_t T, int64_t S,
                             int64_t A, float* scores, float* th) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      const float* q = qp + (b * T + t) * A;
      for (int64_t s = 0; s < S; ++s) {
        const float* k = kp + (b * S + s) * A;
        float* h = th ? th + ((b * T + t) * S + s) * A : nullptr;
        float acc = 0.0f;
        float buf[256];  // tanh(q + k) in chunks (into th when it is kept for backward)
        for (int64_t a0 = 0; a0 < A; a0 += 256) {
          const int64_t n = std::min<int64_t>(256, A - a0);
          float* e = h ? h + a0 : buf;
          for (int64_t a = 0; a < n; ++a) e[a] = q[a0 + a] + k[a0 + a];
          vtanh(e, e, n);
          for (int64_t a = 0; a < n; ++a) acc += v[a0 + a] * e[a];
        }
        scores[(b * T + t) * S + s] = acc;
      }
    }
}

void additive_scores_backward(const float* dscores, const float* th, const float* v, int64_t B, int64_t T, int64_t S,
                              int64_t A, float* dqp, float* dkp, float* dv) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t s = 0; s < S; ++s) {
        const float g = dscores[(b * T + t) * S + s];
        if (g == 0.0f) continue;  // masked positions carry no gradient
        const float* h = th + ((b * T + t) * S + s) * A;
        float* dq = dqp ? dqp + (b * T + t) * A : nullptr;
        float* dk = dkp ? dkp + (b * S + s) * A : nullptr;
        for (int64_t a = 0; a < A; ++a) {
          // forward: score = Σ_a v[a] e[a], e = tanh(qp + kp)
          const float dpre = g * v[a] * (1.0f - h[a] * h[a]);
          if (dq) dq[a] += dpre;
          if (dk) dk[a] += dpre;
          if (dv) dv[a] += g * h[a];
        }
      }
}

}  // namespace attend::kernels
