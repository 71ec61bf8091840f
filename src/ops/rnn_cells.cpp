#include "attend/ops/rnn_cells.h"

#include <stdexcept>

#include "kernels/vec_math.h"
#include "kernels/blas.h"
#include "kernels/rnn_gates.h"

namespace attend {

namespace {
void check_cell(const char* op, const Var& gi, const Var& h, const Var& w_hh, const Var& b_hh, int gates,
                const Tensor& valid) {
  const bool ok = h.ndim() == 2 && gi.ndim() == 2 && gi.size(0) == h.size(0) && gi.size(1) == gates * h.size(1) &&
                  w_hh.ndim() == 2 && w_hh.size(0) == h.size(1) && w_hh.size(1) == gates * h.size(1) &&
                  b_hh.ndim() == 1 && b_hh.size(0) == gates * h.size(1);
  if (!ok) {
    throw std::invalid_argument(std::string(op) + ": gi " + gi.shape().str() + ", h " + h.shape().str() + ", w_hh " +
                                w_hh.shape().str() + ", b_hh " + b_hh.shape().str() + " do not fit (" +
                                std::to_string(gates) + " gates)");
  }
  if (valid.defined() && valid.numel() != h.size(0)) {
    throw std::invalid_argument(std::string(op) + ": valid " + valid.shape().str() + " for batch " +
                                std::to_string(h.size(0)));
  }
}

// gh = h W_hh + b_hh : [B, G*H]
Tensor recurrent_projection(const Var& h, const Var& w_hh, const Var& b_hh) {
  const int B = h.size(0), H = h.size(1), GH = w_hh.size(1);
  Tensor gh = Tensor::empty(Shape{B, GH});
  kernels::affine(B, GH, H, h.value().data(), w_hh.value().data(), b_hh.value().data(), gh.data());
  return gh;
}

// Backward of gh = h W_hh + b_hh given dgh.
void recurrent_projection_backward(const Var& h, const Var& w_hh, const Var& b_hh, const Tensor& dgh) {
  const int B = h.size(0), H = h.size(1), GH = w_hh.size(1);
  if (h.requires_grad())
    kernels::gemm(false, true, B, H, GH, 1.0f, dgh.data(), GH, w_hh.value().data(), GH, 1.0f, h.grad_ref().data(), H);
  if (w_hh.requires_grad()) {
    if (B < kDeferRows && w_hh.leaf_grad() && Tape::running()) {  // one product per pass, not per step
      Tape::running()->defer_weight_grad(w_hh.node(), h.value(), dgh);
    } else {
      kernels::gemm(true, false, H, GH, B, 1.0f, h.value().data(), H, dgh.data(), GH, 1.0f, w_hh.grad_ref().data(), GH);
    }
  }
  if (b_hh.requires_grad()) {
    float* db = b_hh.grad_ref().data();
    for (int b = 0; b < B; ++b)
      for (int k = 0; k < GH; ++k) db[k] += dgh.data()[int64_t(b) * GH + k];
  }
}
}  // namespace

Var gru_cell(const Var& gi, const Var& h, const Var& w_hh, const Var& b_hh, const Tensor& valid) {
  check_cell("gru_cell", gi, h, w_hh, b_hh, 3, valid);
  const int B = h.size(0), H = h.size(1);
  Tensor gh = recurrent_projection(h, w_hh, b_hh);
  Tensor saved = Tensor::empty(Shape{B, 4 * H});  // r, z, n, gh_n per row (rows kept by valid: unused)
  Tensor out = Tensor::empty(Shape{B, H});
  for (int b = 0; b < B; ++b) {
    const float* x = gi.value().data() + int64_t(b) * 3 * H;
    const float* g = gh.data() + int64_t(b) * 3 * H;
    const float* hp = h.value().data() + int64_t(b) * H;
    float* s = saved.data() + int64_t(b) * 4 * H;
    float* y = out.data() + int64_t(b) * H;
    if (valid.defined() && valid.data()[b] == 0.0f) {
      std::copy(hp, hp + H, y);
      continue;
    }
    kernels::gru_gates(x, g, hp, H, s, y);
  }
  return make_result(std::move(out), needs_grad({&gi, &h, &w_hh, &b_hh}),
                     [gi, h, w_hh, b_hh, valid, saved, B, H](Node& node) {
                       const float* dy = node.grad.data();
                       Tensor dgh(Shape{B, 3 * H});
                       float* dgi = gi.requires_grad() ? gi.grad_ref().data() : nullptr;
                       float* dh = h.requires_grad() ? h.grad_ref().data() : nullptr;
                       for (int b = 0; b < B; ++b) {
                         const float* d = dy + int64_t(b) * H;
                         if (valid.defined() && valid.data()[b] == 0.0f) {  // forward: h' = h
                           if (dh)
                             for (int k = 0; k < H; ++k) dh[int64_t(b) * H + k] += d[k];
                           continue;
                         }
                         const float* s = saved.data() + int64_t(b) * 4 * H;
                         const float* hp = h.value().data() + int64_t(b) * H;
                         float* gg = dgh.data() + int64_t(b) * 3 * H;
                         for (int k = 0; k < H; ++k) {
                           const float r = s[k], z = s[H + k], n = s[2 * H + k], ghn = s[3 * H + k];
                           // forward: h' = (1 - z) n + z h
                           const float dn = d[k] * (1.0f - z);
                           const float dz = d[k] * (hp[k] - n);
                           if (dh) dh[int64_t(b) * H + k] += d[k] * z;
                           // forward: n = tanh(gi_n + r gh_n); r = σ(gi_r + gh_r); z = σ(gi_z + gh_z)
                           const float dan = dn * (1.0f - n * n);
                           const float dar = dan * ghn * r * (1.0f - r);
                           const float daz = dz * z * (1.0f - z);
                           gg[k] = dar, gg[H + k] = daz, gg[2 * H + k] = dan * r;
                           if (dgi) {
                             float* gx = dgi + int64_t(b) * 3 * H;
                             gx[k] += dar, gx[H + k] += daz, gx[2 * H + k] += dan;
                           }
                         }
                       }
                       recurrent_projection_backward(h, w_hh, b_hh, dgh);
                     });
}

Var lstm_cell(const Var& gi, const Var& h, const Var& c, const Var& w_hh, const Var& b_hh, const Tensor& valid) {
  check_cell("lstm_cell", gi, h, w_hh, b_hh, 4, valid);
  check_same_shape(h.shape(), c.shape(), "lstm_cell: c");
  const int B = h.size(0), H = h.size(1);
  Tensor gates = recurrent_projection(h, w_hh, b_hh);  // becomes the activated gates i, f, g, o
  Tensor tanh_c = Tensor::empty(Shape{B, H});          // tanh(c'), kept for backward
  Tensor out = Tensor::empty(Shape{2, B, H});
  float* ho = out.data();
  float* co = out.data() + int64_t(B) * H;
  for (int b = 0; b < B; ++b) {
    const float* x = gi.value().data() + int64_t(b) * 4 * H;
    float* g = gates.data() + int64_t(b) * 4 * H;
    const float* hp = h.value().data() + int64_t(b) * H;
    const float* cp = c.value().data() + int64_t(b) * H;
    if (valid.defined() && valid.data()[b] == 0.0f) {
      std::copy(hp, hp + H, ho + int64_t(b) * H);
      std::copy(cp, cp + H, co + int64_t(b) * H);
      continue;
    }
    kernels::lstm_gates(x, g, cp, H, co + int64_t(b) * H, tanh_c.data() + int64_t(b) * H, ho + int64_t(b) * H);
  }
  return make_result(std::move(out), needs_grad({&gi, &h, &c, &w_hh, &b_hh}),
                     [gi, h, c, w_hh, b_hh, valid, gates, tanh_c, B, H](Node& node) {
                       const float* dho = node.grad.data();
                       const float* dco = node.grad.data() + int64_t(B) * H;
                       Tensor dgates(Shape{B, 4 * H});
                       float* dgi = gi.requires_grad() ? gi.grad_ref().data() : nullptr;
                       float* dh = h.requires_grad() ? h.grad_ref().data() : nullptr;
                       float* dc = c.requires_grad() ? c.grad_ref().data() : nullptr;
                       for (int b = 0; b < B; ++b) {
                         const int64_t r = int64_t(b) * H;
                         if (valid.defined() && valid.data()[b] == 0.0f) {  // forward: h' = h, c' = c
                           for (int k = 0; k < H; ++k) {
                             if (dh) dh[r + k] += dho[r + k];
                             if (dc) dc[r + k] += dco[r + k];
                           }
                           continue;
                         }
                         const float* g = gates.data() + 4 * r;
                         float* dg = dgates.data() + 4 * r;
                         for (int k = 0; k < H; ++k) {
                           const float i = g[k], f = g[H + k], gg = g[2 * H + k], o = g[3 * H + k];
                           const float tc = tanh_c.data()[r + k];
                           // forward: h' = o tanh(c');  c' = f c + i g
                           const float dct = dco[r + k] + dho[r + k] * o * (1.0f - tc * tc);
                           dg[k] = dct * gg * i * (1.0f - i);
                           dg[H + k] = dct * c.value().data()[r + k] * f * (1.0f - f);
                           dg[2 * H + k] = dct * i * (1.0f - gg * gg);
                           dg[3 * H + k] = dho[r + k] * tc * o * (1.0f - o);
                           if (dc) dc[r + k] += dct * f;
                         }
                         if (dgi)
                           for (int k = 0; k < 4 * H; ++k) dgi[4 * r + k] += dg[k];
                       }
                       recurrent_projection_backward(h, w_hh, b_hh, dgates);
                     });
}

}  // namespace attend
