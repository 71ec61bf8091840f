#include "attend/ops/attention_scores.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <stdexcept>
#include <vector>

#include "kernels/attention_scores.h"
#include "kernels/blas.h"
#include "kernels/vec_math.h"

namespace attend {

Var additive_scores(const Var& qp, const Var& kp, const Var& v) {
  if (qp.ndim() != 3 || kp.ndim() != 3 || v.ndim() != 1 || qp.size(0) != kp.size(0) || qp.size(2) != kp.size(2) ||
      v.size(0) != qp.size(2)) {
    throw std::invalid_argument("additive_scores: qp " + qp.shape().str() + " ([B,T,A]), kp " + kp.shape().str() +
                                " ([B,S,A]) and v " + v.shape().str() + " ([A]) do not fit");
  }
  const int64_t B = qp.size(0), T = qp.size(1), S = kp.size(1), A = qp.size(2);
  const bool record = needs_grad({&qp, &kp, &v});
  Tensor scores = Tensor::empty(Shape{B, T, S});
  Tensor th = record ? Tensor::empty(Shape{B, T, S, A}) : Tensor();  // saved tanh, only when training
  kernels::additive_scores_forward(qp.value().data(), kp.value().data(), v.value().data(), B, T, S, A, scores.data(),
                                   record ? th.data() : nullptr);
  return make_result(std::move(scores), record, [qp, kp, v, th, B, T, S, A](Node& out) {
    kernels::additive_scores_backward(
        out.grad.data(), th.data(), v.value().data(), B, T, S, A, qp.requires_grad() ? qp.grad_ref().data() : nullptr,
        kp.requires_grad() ? kp.grad_ref().data() : nullptr, v.requires_grad() ? v.grad_ref().data() : nullptr);
  });
}

namespace {
// alpha [B,S] -> [B*S, R]: row (b,s) holds alpha[b, s + j - R/2] for j < R, 0 past the edges.
Tensor position_taps(const Tensor& alpha, int64_t R) {
  const int64_t B = alpha.size(0), S = alpha.size(1), half = R / 2;
  Tensor cols(Shape{B * S, R});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) {
      float* row = cols.data() + (b * S + s) * R;
      const int64_t lo = std::max<int64_t>(0, half - s), hi = std::min<int64_t>(R, S - s + half);
      for (int64_t j = lo; j < hi; ++j) row[j] = alpha.data()[b * S + s + j - half];
    }
  return cols;
}
}  // namespace

Var position_conv(const Var& alpha, const Var& filters) {
  if (alpha.ndim() != 2 || filters.ndim() != 2 || filters.size(1) % 2 == 0) {
    throw std::invalid_argument("position_conv: alpha " + alpha.shape().str() + " ([B,S]) and filters " +
                                filters.shape().str() + " ([K,R], R odd) do not fit");
  }
  const int64_t B = alpha.size(0), S = alpha.size(1), K = filters.size(0), R = filters.size(1);
  // As a matrix product: the R taps of every position side by side (im2col), times F^T.
  Tensor cols = position_taps(alpha.value(), R);  // [B*S, R]
  Tensor out = Tensor::empty(Shape{B, S, K});
  kernels::gemm(false, true, B * S, K, R, 1.0f, cols.data(), R, filters.value().data(), R, 0.0f, out.data(), K);
  return make_result(std::move(out), needs_grad({&alpha, &filters}), [alpha, filters, B, S, K, R](Node& node) {
    // forward: out = cols F^T with cols[(b,s), j] = alpha[b, s + j - R/2] (0 outside)
    //   dF += dy^T cols;  dcols = dy F, and alpha[b, s + j - R/2] collects dcols[(b,s), j]
    const float* dy = node.grad.data();
    if (filters.requires_grad()) {
      const Tensor cols = position_taps(alpha.value(), R);
      kernels::gemm(true, false, K, R, B * S, 1.0f, dy, K, cols.data(), R, 1.0f, filters.grad_ref().data(), R);
    }
    if (alpha.requires_grad()) {
      Tensor dcols = Tensor::empty(Shape{B * S, R});
      kernels::gemm(false, false, B * S, R, K, 1.0f, dy, K, filters.value().data(), R, 0.0f, dcols.data(), R);
      float* da = alpha.grad_ref().data();
      const int64_t half = R / 2;
      for (int64_t b = 0; b < B; ++b)
        for (int64_t s = 0; s < S; ++s) {
          const float* row = dcols.data() + (b * S + s) * R;
          const int64_t lo = std::max<int64_t>(0, half - s), hi = std::min<int64_t>(R, S - s + half);
          for (int64_t j = lo; j < hi; ++j) da[b * S + s + j - half] += row[j];
        }
    }
  });
}

Var monotonic_alignment(const Var& p, const Var& prev) {
  if (p.ndim() != 2 || p.shape() != prev.shape()) {
    throw std::invalid_argument("monotonic_alignment: p " + p.shape().str() + " and prev " + prev.shape().str() +
                                " must both be [B,S]");
  }
  const int64_t B = p.size(0), S = p.size(1);
  Tensor alpha = Tensor::empty(p.shape()), q = Tensor::empty(p.shape());  // q saved for backward
  for (int64_t b = 0; b < B; ++b) {
    const float* pb = p.value().data() + b * S;
    const float* ab = prev.value().data() + b * S;
    float* qb = q.data() + b * S;
    float* yb = alpha.data() + b * S;
    for (int64_t j = 0; j < S; ++j) {
      qb[j] = (j == 0 ? 0.0f : (1.0f - pb[j - 1]) * qb[j - 1]) + ab[j];
      yb[j] = pb[j] * qb[j];
    }
  }
  return make_result(std::move(alpha), needs_grad({&p, &prev}), [p, prev, q, B, S](Node& node) {
    // forward: q_j = (1 - p_{j-1}) q_{j-1} + prev_j;  alpha_j = p_j q_j.  Reverse scan over j:
    //   dq_j = dalpha_j p_j + dq_{j+1} (1 - p_j);  dp_j = dalpha_j q_j - dq_{j+1} q_j;  dprev_j = dq_j
    float* dp = p.requires_grad() ? p.grad_ref().data() : nullptr;
    float* dprev = prev.requires_grad() ? prev.grad_ref().data() : nullptr;
    for (int64_t b = 0; b < B; ++b) {
      const float* pb = p.value().data() + b * S;
      const float* qb = q.data() + b * S;
      const float* dy = node.grad.data() + b * S;
      float dq_next = 0.0f;
      for (int64_t j = S - 1; j >= 0; --j) {
        const float dq = dy[j] * pb[j] + (j + 1 < S ? dq_next * (1.0f - pb[j]) : 0.0f);
        if (dp) dp[b * S + j] += dy[j] * qb[j] - (j + 1 < S ? dq_next * qb[j] : 0.0f);
        if (dprev) dprev[b * S + j] += dq;
        dq_next = dq;
      }
    }
  });
}

Var forward_alignment(const Var& prev, const Var& y, const Var& u) {
  if (prev.ndim() != 2 || prev.shape() != y.shape())
    throw std::invalid_argument("forward_alignment: prev " + prev.shape().str() + " and y " + y.shape().str() +
                                " must both be [B,S]");
  const int64_t B = prev.size(0), S = prev.size(1);
  if (u.defined() && u.shape() != Shape{B, 1})
    throw std::invalid_argument("forward_alignment: u " + u.shape().str() + " must be [" + std::to_string(B) + ", 1]");
  Tensor alpha = Tensor::empty(prev.shape());
  Tensor total(Shape{B});  // saved for backward: sum_m mix_m y_m
  for (int64_t b = 0; b < B; ++b) {
    const float ub = u.defined() ? u.value().data()[b] : 0.5f;
    const float* pb = prev.value().data() + b * S;
    const float* yb = y.value().data() + b * S;
    float* ab = alpha.data() + b * S;
    float z = 0.0f;
    for (int64_t n = 0; n < S; ++n) {
      const float mix = (1.0f - ub) * pb[n] + (n > 0 ? ub * pb[n - 1] : 0.0f);
      ab[n] = mix * yb[n];
      z += ab[n];
    }
    total.data()[b] = z;
    const float inv = z > 0.0f ? 1.0f / z : 0.0f;
    for (int64_t n = 0; n < S; ++n) ab[n] *= inv;
  }
  return make_result(std::move(alpha), needs_grad({&prev, &y, &u}), [prev, y, u, total, B, S](Node& node) {
    // forward: a_n = mix_n y_n, alpha_n = a_n / Z, mix_n = (1 - u) prev_n + u prev_{n-1}
    //   da_n = (dalpha_n - sum_m dalpha_m alpha_m) / Z
    //   dy_n = da_n mix_n;  dmix_n = da_n y_n
    //   dprev_n = (1 - u) dmix_n + u dmix_{n+1};  du = sum_n dmix_n (prev_{n-1} - prev_n)
    float* dprev = prev.requires_grad() ? prev.grad_ref().data() : nullptr;
    float* dy = y.requires_grad() ? y.grad_ref().data() : nullptr;
    float* du = u.defined() && u.requires_grad() ? u.grad_ref().data() : nullptr;
    for (int64_t b = 0; b < B; ++b) {
      const float z = total.data()[b];
      if (z <= 0.0f) continue;
      const float ub = u.defined() ? u.value().data()[b] : 0.5f;
      const float* pb = prev.value().data() + b * S;
      const float* yb = y.value().data() + b * S;
      const float* al = node.value.data() + b * S;
      const float* g = node.grad.data() + b * S;
      double dot = 0.0;
      for (int64_t n = 0; n < S; ++n) dot += double(g[n]) * al[n];
      float dmix_next = 0.0f, du_acc = 0.0f;
      for (int64_t n = S - 1; n >= 0; --n) {
        const float da = (g[n] - static_cast<float>(dot)) / z;
        const float before = n > 0 ? pb[n - 1] : 0.0f;
        const float mix = (1.0f - ub) * pb[n] + ub * before;
        const float dmix = da * yb[n];
        if (dy) dy[b * S + n] += da * mix;
        if (dprev) dprev[b * S + n] += (1.0f - ub) * dmix + ub * dmix_next;
        du_acc += dmix * (before - pb[n]);
        dmix_next = dmix;
      }
      if (du) du[b] += du_acc;
    }
  });
}

namespace {

// The backward of forward_alignment_log; `mix` is the forward's m_n.
void forward_alignment_log_backward(Node& node, const Var& log_prev, const Var& log_y, const Var& u, const Tensor& mix,
                                    int64_t B, int64_t S) {
  // forward: x_n = m_n + ly_n, la_n = x_n - logsumexp(x), m_n = logaddexp(A_n, B_n) with
  //   A_n = log(1 - u) + lp_n, B_n = log u + lp_{n-1}
  //   dx_n = g_n - alpha_n sum_k g_k;  dly_n = dx_n;  dm_n = dx_n
  //   dlp_n = dm_n e^{A_n - m_n} + dm_{n+1} e^{B_{n+1} - m_{n+1}}
  //   du = sum_n dm_n (e^{lp_{n-1} - m_n} - e^{lp_n - m_n})
  float* dlp = log_prev.requires_grad() ? log_prev.grad_ref().data() : nullptr;
  float* dly = log_y.requires_grad() ? log_y.grad_ref().data() : nullptr;
  float* du = u.defined() && u.requires_grad() ? u.grad_ref().data() : nullptr;
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const float* la = node.value.data();
  const float* lp = log_prev.value().data();
  const float* m = mix.data();
  // alpha_n, and the mix's weights w_stay = e^{A_n - m_n}, w_move = e^{B_n - m_n} (0 where
  // m_n = -inf), for the whole batch at once.
  std::vector<float> alpha(B * S), w_stay(B * S), w_move(B * S), log_stay(B), log_move(B);
  for (int64_t b = 0; b < B; ++b) {
    const float ub = u.defined() ? u.value().data()[b] : 0.5f;
    log_stay[b] = std::log(1.0f - ub), log_move[b] = std::log(ub);
    for (int64_t n = 0; n < S; ++n) {
      const int64_t i = b * S + n;
      const bool none = m[i] == kNegInf;
      w_stay[i] = none ? kNegInf : log_stay[b] + lp[i] - m[i];
      w_move[i] = none || n == 0 ? kNegInf : log_move[b] + lp[i - 1] - m[i];
    }
  }
  kernels::vexp(la, alpha.data(), B * S);  // exactly 0 where la = -inf
  kernels::vexp(w_stay.data(), w_stay.data(), B * S);
  kernels::vexp(w_move.data(), w_move.data(), B * S);
  for (int64_t b = 0; b < B; ++b) {
    if (kernels::vmax(la + b * S, S) == kNegInf) continue;
    const float ub = u.defined() ? u.value().data()[b] : 0.5f;
    // e^{lp_n - m_n} = w_stay / (1 - u) and e^{lp_{n-1} - m_n} = w_move / u, unless u is 0 or 1
    const bool divide = ub > 0.0f && ub < 1.0f;
    const float* g = node.grad.data() + b * S;
    double total = 0.0;
    for (int64_t n = 0; n < S; ++n) total += g[n];
    float du_acc = 0.0f;
    for (int64_t n = 0; n < S; ++n) {
      const int64_t i = b * S + n;
      const float dx = la[i] == kNegInf ? 0.0f : g[n] - alpha[i] * float(total);
      if (dly) dly[i] += dx;
      if (m[i] == kNegInf || dx == 0.0f) continue;
      if (dlp) {
        dlp[i] += dx * w_stay[i];
        if (n > 0) dlp[i - 1] += dx * w_move[i];
      }
      if (du) {
        const float from_prev = n == 0 ? 0.0f : divide ? w_move[i] / ub : std::exp(lp[i - 1] - m[i]);
        const float from_here = divide ? w_stay[i] / (1.0f - ub) : std::exp(lp[i] - m[i]);
        du_acc += dx * (from_prev - from_here);
      }
    }
    if (du) du[b] += du_acc;
  }
}

}  // namespace

Var forward_alignment_log(const Var& log_prev, const Var& log_y, const Var& u) {
  if (log_prev.ndim() != 2 || log_prev.shape() != log_y.shape())
    throw std::invalid_argument("forward_alignment_log: log_prev " + log_prev.shape().str() + " and log_y " +
                                log_y.shape().str() + " must both be [B,S]");
  const int64_t B = log_prev.size(0), S = log_prev.size(1);
  if (u.defined() && u.shape() != Shape{B, 1})
    throw std::invalid_argument("forward_alignment_log: u " + u.shape().str() + " must be [" + std::to_string(B) +
                                ", 1]");
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  Tensor out = Tensor::empty(log_prev.shape());
  Tensor mix = Tensor::empty(log_prev.shape());  // saved for backward: m_n
  // The whole batch at once (vector kernels over B*S, not S, values): A_n, B_n, then m_n.
  const float* lp = log_prev.value().data();
  const float* ly = log_y.value().data();
  float* m = mix.data();
  float* la = out.data();
  std::vector<float> from_prev(B * S), row(S);
  for (int64_t b = 0; b < B; ++b) {
    const float ub = u.defined() ? u.value().data()[b] : 0.5f;
    const float stay = std::log(1.0f - ub), move = std::log(ub);
    for (int64_t n = 0; n < S; ++n)
      m[b * S + n] = stay + lp[b * S + n], from_prev[b * S + n] = n > 0 ? move + lp[b * S + n - 1] : kNegInf;
  }
  kernels::vlogaddexp(m, from_prev.data(), m, B * S);
  for (int64_t i = 0; i < B * S; ++i) la[i] = m[i] + ly[i];
  for (int64_t b = 0; b < B; ++b) {  // la -= logsumexp over the row
    float* r = la + b * S;
    const float mx = kernels::vmax(r, S);
    if (mx == kNegInf) continue;  // nowhere to go: every entry stays -inf
    const float lse = mx + std::log(kernels::vexp_shifted_sum(r, mx, row.data(), S));
    for (int64_t n = 0; n < S; ++n) r[n] -= lse;
  }
  return make_result(std::move(out), needs_grad({&log_prev, &log_y, &u}), [log_prev, log_y, u, mix, B, S](Node& node) {
    forward_alignment_log_backward(node, log_prev, log_y, u, mix, B, S);
  });
}

}  // namespace attend
