#include "attend/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "attend/io/safetensors.h"
#include "attend/train/communicator.h"
#include "kernels/parallel.h"

namespace attend {

namespace {

// The constants of one update (step t at learning rate lr, gradients scaled by clip).
struct Coefficients {
  float b1, b2, eps, decay, step_size, inv_bc2, clip;
};

Coefficients coefficients(const AdamOptions& o, int64_t t, float lr, float norm) {
  const float clip = (o.clip_norm > 0.0f && norm > o.clip_norm) ? o.clip_norm / (norm + 1e-6f) : 1.0f;
  const float bc1 = 1.0f - std::pow(o.beta1, static_cast<float>(t));
  const float bc2 = 1.0f - std::pow(o.beta2, static_cast<float>(t));
  return {o.beta1, o.beta2, o.eps, lr * o.weight_decay, lr / bc1, 1.0f / bc2, clip};
}

// p, m, v [n] after the gradient g [n]: the one place Adam's arithmetic is written.
void update_range(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, int64_t n,
                  const Coefficients& c) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * c.clip;
    m[i] = c.b1 * m[i] + (1.0f - c.b1) * gi;
    v[i] = c.b2 * v[i] + (1.0f - c.b2) * gi * gi;
    p[i] -= c.decay * p[i] + c.step_size * m[i] / (std::sqrt(v[i] * c.inv_bc2) + c.eps);
  }
}

// Each weight on its own: large tensors are split between the threads.
void update(float* p, const float* g, float* m, float* v, int64_t n, const Coefficients& c) {
  kernels::parallel_ranges(n, 16.0 * double(n),
                           [&](int64_t b, int64_t e) { update_range(p + b, g + b, m + b, v + b, e - b, c); });
}

// sq += sum g^2 in double, in 8 lanes that are each their own sum (so the loop vectorises
// without reassociating anything), combined in a fixed order: the same on every run. One chain
// of dependent additions took 3% of a G2P Transformer's training step.
void add_squares(double& sq, const float* g, int64_t n) {
  double acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += double(g[i + j]) * g[i + j];
  for (; i < n; ++i) acc[0] += double(g[i]) * g[i];
  for (int w = 4; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  sq += acc[0];
}

}  // namespace

// This rank's share [lo, hi) of the flattened parameters and what it keeps of it.
struct Adam::Share {
  const Communicator* comm = nullptr;
  std::vector<int64_t> counts;  // every rank's share, in rank order
  int64_t lo = 0, hi = 0;
  std::vector<float> m, v;           // the share's moments
  std::vector<float> grad, weights;  // the share's summed gradients and updated weights
  std::vector<float> flat;           // every parameter: gradients out, weights (or moments) back

  // fn(tensor k, first element in it, elements, first element in the flat vector) for every
  // piece of the parameters inside [from, to) of the flat vector.
  template <typename Fn>
  static void pieces(const std::vector<NamedParameter>& params, int64_t from, int64_t to, Fn fn) {
    int64_t at = 0;
    for (size_t k = 0; k < params.size(); ++k) {
      const int64_t n = params[k].var.value().numel(), b = std::max(from, at), e = std::min(to, at + n);
      if (b < e) fn(k, b - at, e - b, b);
      at += n;
    }
  }
};

Adam::Adam(std::vector<NamedParameter> params, AdamOptions options, const Communicator* shard)
    : params_(std::move(params)), opt_(options) {
  if (!(opt_.lr > 0.0f)) throw std::invalid_argument("Adam: learning rate must be > 0, got " + std::to_string(opt_.lr));
  if (!shard || shard->size() == 1) {
    for (const auto& p : params_) m_.emplace_back(p.var.shape()), v_.emplace_back(p.var.shape());
    return;
  }
  share_ = std::make_unique<Share>();
  Share& s = *share_;
  int64_t total = 0;
  for (const auto& p : params_) total += p.var.value().numel();
  const int N = shard->size();
  s.comm = shard;
  for (int r = 0; r < N; ++r) s.counts.push_back(total / N + (r < total % N ? 1 : 0));
  for (int r = 0; r < shard->rank(); ++r) s.lo += s.counts[r];
  s.hi = s.lo + s.counts[shard->rank()];
  const size_t mine = static_cast<size_t>(s.hi - s.lo);
  s.m.assign(mine, 0.0f), s.v.assign(mine, 0.0f), s.grad.resize(mine), s.weights.resize(mine);
  s.flat.resize(static_cast<size_t>(total));
}

Adam::~Adam() = default;

float Adam::step(float lr) {
  if (share_) return step_sharded(lr);
  double sq = 0.0;
  for (const auto& p : params_)
    if (p.var.grad().defined()) add_squares(sq, p.var.grad().data(), p.var.grad().numel());
  const float norm = static_cast<float>(std::sqrt(sq));
  if (!std::isfinite(norm)) return norm;  // the caller skips the step; nothing is updated
  const Coefficients c = coefficients(opt_, ++t_, lr, norm);
  for (size_t k = 0; k < params_.size(); ++k) {
    Var w = params_[k].var;
    if (w.grad().defined()) update(w.value().data(), w.grad().data(), m_[k].data(), v_[k].data(), w.value().numel(), c);
  }
  return norm;
}

float Adam::step_sharded(float lr) {
  Share& s = *share_;
  const int64_t total = static_cast<int64_t>(s.flat.size());
  Share::pieces(params_, 0, total, [&](size_t k, int64_t first, int64_t n, int64_t at) {
    std::copy_n(params_[k].var.grad_ref().data() + first, n, s.flat.data() + at);
  });
  s.comm->reduce_scatter_sum(s.flat.data(), s.grad.data(), s.counts);
  double sq = 0.0;
  add_squares(sq, s.grad.data(), static_cast<int64_t>(s.grad.size()));
  s.comm->allreduce_sum(&sq, 1);
  const float norm = static_cast<float>(std::sqrt(sq));
  if (!std::isfinite(norm)) return norm;  // every rank sees the same norm and skips alike
  const Coefficients c = coefficients(opt_, ++t_, lr, norm);
  Share::pieces(params_, s.lo, s.hi, [&](size_t k, int64_t first, int64_t n, int64_t at) {
    std::copy_n(params_[k].var.value().data() + first, n, s.weights.data() + (at - s.lo));
  });
  update(s.weights.data(), s.grad.data(), s.m.data(), s.v.data(), static_cast<int64_t>(s.weights.size()), c);
  s.comm->allgather(s.weights.data(), s.flat.data(), s.counts);
  Share::pieces(params_, 0, total, [&](size_t k, int64_t first, int64_t n, int64_t at) {
    std::copy_n(s.flat.data() + at, n, params_[k].var.value().data() + first);
  });
  return norm;
}

void Adam::zero_grad() {
  for (auto& p : params_)
    if (p.var.grad().defined()) p.var.grad_ref().zero();
}

std::vector<NamedParameter> Adam::state() const {
  std::vector<NamedParameter> out;
  if (!share_) {
    for (size_t k = 0; k < params_.size(); ++k) {
      out.push_back({"m." + params_[k].name, Var(m_[k])});
      out.push_back({"v." + params_[k].name, Var(v_[k])});
    }
    return out;
  }
  Share& s = *share_;
  std::vector<Tensor> m, v;
  for (const auto& p : params_) m.emplace_back(p.var.shape()), v.emplace_back(p.var.shape());
  for (const auto& [moments, share] : {std::pair{&m, &s.m}, {&v, &s.v}}) {
    std::vector<Tensor>& into = *moments;  // a name the lambda can capture (clang 14: not a structured binding)
    s.comm->allgather(share->data(), s.flat.data(), s.counts);
    Share::pieces(params_, 0, static_cast<int64_t>(s.flat.size()), [&](size_t k, int64_t first, int64_t n, int64_t at) {
      std::copy_n(s.flat.data() + at, n, into[k].data() + first);
    });
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    out.push_back({"m." + params_[k].name, Var(m[k])});
    out.push_back({"v." + params_[k].name, Var(v[k])});
  }
  return out;
}

void Adam::load_state(int64_t steps, const std::map<std::string, Tensor>& moments, const std::string& origin) {
  if (steps < 0) throw std::runtime_error(origin + ": Adam step count " + std::to_string(steps) + " is negative");
  if (!share_) {
    assign_parameters(state(), moments, origin);
    t_ = steps;
    return;
  }
  std::vector<NamedParameter> full;  // the moments' shapes, filled from the file, then this rank's share kept
  for (const auto& p : params_) {
    full.push_back({"m." + p.name, Var(Tensor(p.var.shape()))});
    full.push_back({"v." + p.name, Var(Tensor(p.var.shape()))});
  }
  assign_parameters(full, moments, origin);
  Share& s = *share_;
  Share::pieces(params_, s.lo, s.hi, [&](size_t k, int64_t first, int64_t n, int64_t at) {
    std::copy_n(full[2 * k].var.value().data() + first, n, s.m.data() + (at - s.lo));
    std::copy_n(full[2 * k + 1].var.value().data() + first, n, s.v.data() + (at - s.lo));
  });
  t_ = steps;
}

float LrSchedule::at(int64_t step) const {
  const float s = static_cast<float>(std::max<int64_t>(step, 1));
  const float w = static_cast<float>(warmup);
  float lr = base;
  if (kind == Kind::kInverseSqrt)
    lr = warmup > 0 ? base * std::min(s / w, std::sqrt(w / s)) : base / std::sqrt(s);
  else if (warmup > 0 && s < w)
    lr = base * s / w;
  const int64_t left = total - std::max<int64_t>(step, 1) + 1;  // updates left, this one included
  if (cooldown > 0 && left <= cooldown) lr *= static_cast<float>(std::max<int64_t>(left, 0)) / cooldown;
  return lr;
}

LrSchedule::Kind parse_schedule(const std::string& name) {
  if (name == "constant") return LrSchedule::Kind::kConstant;
  if (name == "inverse-sqrt") return LrSchedule::Kind::kInverseSqrt;
  throw std::invalid_argument("unknown learning-rate schedule '" + name + "' (expected constant or inverse-sqrt)");
}

}  // namespace attend
