#include "attend/ops/sdpa.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "kernels/flash_attention.h"
#include "kernels/parallel.h"
#include "sdpa_options.h"

namespace attend {

namespace {

// Validates shapes and options once; the kernels assume valid input.
kernels::SdpaProblem problem(const Tensor& q, const Tensor& k, const Tensor& v, const SdpaOptions& o,
                             const Tensor& bias) {
  auto bad = [](const std::string& m) { throw std::invalid_argument("sdpa: " + m); };
  if (q.shape().ndim() != 4 || k.shape().ndim() != 4 || v.shape().ndim() != 4)
    bad("q, k, v must be [B, H, T, D], [B, Hkv, S, D], [B, Hkv, S, D]; got " + q.shape().str() + ", " +
        k.shape().str() + ", " + v.shape().str());
  if (k.shape() != v.shape()) bad("k " + k.shape().str() + " and v " + v.shape().str() + " differ");
  kernels::SdpaProblem p;
  p.B = static_cast<int>(q.shape()[0]), p.H = static_cast<int>(q.shape()[1]);
  p.T = static_cast<int>(q.shape()[2]), p.D = static_cast<int>(q.shape()[3]);
  p.Hkv = static_cast<int>(k.shape()[1]), p.S = static_cast<int>(k.shape()[2]);
  if (k.shape()[0] != p.B || k.shape()[3] != p.D)
    bad("q " + q.shape().str() + " and k " + k.shape().str() + " need the same batch and head dim");
  if (p.D < 1 || p.H < 1 || p.Hkv < 1)
    bad("empty heads or head dim in q " + q.shape().str() + ", k " + k.shape().str());
  if (p.H % p.Hkv != 0)
    bad(std::to_string(p.H) + " query heads are not a multiple of " + std::to_string(p.Hkv) + " key/value heads");
  if (!o.key_lengths.empty()) {
    if (static_cast<int>(o.key_lengths.size()) != p.B)
      bad(std::to_string(o.key_lengths.size()) + " key lengths for a batch of " + std::to_string(p.B));
    for (int len : o.key_lengths)
      if (len < 0 || len > p.S) bad("key length " + std::to_string(len) + " outside [0, " + std::to_string(p.S) + "]");
    p.key_lengths = o.key_lengths.data();
  }
  p.causal = o.causal, p.bottom_right = o.bottom_right;
  detail::set_shared_options(p, o, "sdpa");
  if (o.window_right < -1) bad("window_right must be >= 0 or -1 (unbounded), got " + std::to_string(o.window_right));
  p.window_right = o.window_right;
  if (!(o.dropout >= 0.0f && o.dropout < 1.0f)) bad("dropout must be in [0, 1), got " + std::to_string(o.dropout));
  p.dropout = o.dropout, p.seed = o.seed;
  detail::set_bias(p, bias, "sdpa");
  return p;
}

}  // namespace

SdpaResult sdpa_forward(const Tensor& q, const Tensor& k, const Tensor& v, const SdpaOptions& o, const Tensor& bias) {
  const kernels::SdpaProblem p = problem(q, k, v, o, bias);
  SdpaResult r{Tensor::empty(q.shape()), Tensor::empty(Shape{p.B, p.H, p.T})};
  if (o.path == SdpaPath::kReference) {
    kernels::sdpa_forward_reference(p, q.data(), k.data(), v.data(), r.out.data(), r.lse.data());
  } else {
    Tensor scratch = Tensor::empty(Shape{kernels::num_threads(), kernels::sdpa_forward_scratch_floats()});
    kernels::sdpa_forward_fused(p, q.data(), k.data(), v.data(), r.out.data(), r.lse.data(), scratch.data());
  }
  return r;
}

SdpaGrads sdpa_backward(const Tensor& q, const Tensor& k, const Tensor& v, const SdpaResult& f, const Tensor& dout,
                        const SdpaOptions& o, const Tensor& bias) {
  const kernels::SdpaProblem p = problem(q, k, v, o, bias);
  if (dout.shape() != q.shape() || f.out.shape() != q.shape() || f.lse.shape() != Shape{p.B, p.H, p.T})
    throw std::invalid_argument("sdpa_backward: dout " + dout.shape().str() + ", out " + f.out.shape().str() +
                                ", lse " + f.lse.shape().str() + " do not match q " + q.shape().str());
  SdpaGrads g{Tensor(q.shape()), Tensor(k.shape()), Tensor(v.shape()), Tensor()};
  // dbias is written per (b, h) in full and then summed over the dimensions the bias was
  // broadcast over, so that no two threads write the same element.
  Tensor dbias_full;
  if (bias.defined()) dbias_full = Tensor(Shape{p.B, p.H, p.T, p.S});
  float* db = bias.defined() ? dbias_full.data() : nullptr;
  if (o.path == SdpaPath::kReference) {
    kernels::sdpa_backward_reference(p, q.data(), k.data(), v.data(), f.out.data(), f.lse.data(), dout.data(),
                                     g.dq.data(), g.dk.data(), g.dv.data(), db);
  } else {
    Tensor scratch = Tensor::empty(Shape{kernels::num_threads(), kernels::sdpa_backward_scratch_floats(p)});
    kernels::sdpa_backward_fused(p, q.data(), k.data(), v.data(), f.out.data(), f.lse.data(), dout.data(), g.dq.data(),
                                 g.dk.data(), g.dv.data(), db, scratch.data());
  }
  if (bias.defined()) {
    if (bias.shape() == dbias_full.shape()) {
      g.dbias = dbias_full;
    } else {
      g.dbias = Tensor(bias.shape());
      const int64_t plane = int64_t(p.T) * p.S;
      for (int b = 0; b < p.B; ++b)
        for (int h = 0; h < p.H; ++h) {
          const float* src = dbias_full.data() + (int64_t(b) * p.H + h) * plane;
          float* dst = g.dbias.data() + b * p.bias_stride_b + h * p.bias_stride_h;
          for (int64_t i = 0; i < plane; ++i) dst[i] += src[i];
        }
    }
  }
  return g;
}

Tensor sdpa_weights(const Tensor& q, const Tensor& k, const Tensor& lse, const SdpaOptions& o, const Tensor& bias,
                    int h_begin, int h_end, int t_begin, int t_end) {
  const kernels::SdpaProblem p = problem(q, k, k, o, bias);
  if (lse.shape() != Shape{p.B, p.H, p.T})
    throw std::invalid_argument("sdpa_weights: lse " + lse.shape().str() + " does not match q " + q.shape().str());
  if (h_begin < 0 || h_begin >= h_end || h_end > p.H || t_begin < 0 || t_begin >= t_end || t_end > p.T)
    throw std::invalid_argument("sdpa_weights: heads [" + std::to_string(h_begin) + ", " + std::to_string(h_end) +
                                ") and rows [" + std::to_string(t_begin) + ", " + std::to_string(t_end) +
                                ") must be non-empty ranges within " + std::to_string(p.H) + " heads and " +
                                std::to_string(p.T) + " rows");
  Tensor w = Tensor::empty(Shape{p.B, h_end - h_begin, t_end - t_begin, p.S});
  kernels::sdpa_weights(p, q.data(), k.data(), lse.data(), h_begin, h_end, t_begin, t_end, w.data());
  return w;
}

Var sdpa(const Var& q, const Var& k, const Var& v, const SdpaOptions& o, const Var& bias) {
  const Tensor b = bias.defined() ? bias.value() : Tensor();
  SdpaResult f = sdpa_forward(q.value(), k.value(), v.value(), o, b);
  const bool record = needs_grad({&q, &k, &v, &bias});
  const Tensor lse = f.lse;
  return make_result(f.out, record, [q, k, v, bias, o, lse](Node& node) {
    // forward: out, lse = sdpa(q, k, v; bias)  =>  FlashAttention-2 backward from lse
    const Tensor bv = bias.defined() ? bias.value() : Tensor();
    SdpaGrads g = sdpa_backward(q.value(), k.value(), v.value(), SdpaResult{node.value, lse}, node.grad, o, bv);
    auto accumulate = [](const Var& x, const Tensor& d) {
      if (!x.requires_grad()) return;
      float* dst = x.grad_ref().data();
      const float* src = d.data();
      for (int64_t i = 0, n = d.numel(); i < n; ++i) dst[i] += src[i];
    };
    accumulate(q, g.dq);
    accumulate(k, g.dk);
    accumulate(v, g.dv);
    if (bias.defined()) accumulate(bias, g.dbias);
  });
}

}  // namespace attend
