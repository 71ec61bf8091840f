#include "attend/train/optimizer.h"

#include <cmath>
#include <stdexcept>

#include "attend/io/safetensors.h"

namespace attend {

Adam::Adam(std::vector<NamedParameter> params, AdamOptions options) : params_(std::move(params)), opt_(options) {
  if (!(opt_.lr > 0.0f)) throw std::invalid_argument("Adam: learning rate must be > 0, got " + std::to_string(opt_.lr));
  for (const auto& p : params_) {
    m_.emplace_back(p.var.shape());
    v_.emplace_back(p.var.shape());
  }
}

float Adam::step(float lr) {
  double sq = 0.0;
  for (const auto& p : params_) {
    if (!p.var.grad().defined()) continue;
    const float* g = p.var.grad().data();
    for (int64_t i = 0, n = p.var.grad().numel(); i < n; ++i) sq += double(g[i]) * g[i];
  }
  const float norm = static_cast<float>(std::sqrt(sq));
  if (!std::isfinite(norm)) return norm;  // the caller skips the step; nothing is updated
  const float clip = (opt_.clip_norm > 0.0f && norm > opt_.clip_norm) ? opt_.clip_norm / (norm + 1e-6f) : 1.0f;
  ++t_;
  const float bc1 = 1.0f - std::pow(opt_.beta1, static_cast<float>(t_));
  const float bc2 = 1.0f - std::pow(opt_.beta2, static_cast<float>(t_));
  const float step_size = lr / bc1;
  const float b1 = opt_.beta1, b2 = opt_.beta2, eps = opt_.eps, decay = lr * opt_.weight_decay;
  const float inv_bc2 = 1.0f / bc2;
  for (size_t k = 0; k < params_.size(); ++k) {
    Var w = params_[k].var;
    if (!w.grad().defined()) continue;
    float* __restrict p = w.value().data();
    const float* __restrict g = w.grad().data();
    float* __restrict m = m_[k].data();
    float* __restrict v = v_[k].data();
    for (int64_t i = 0, n = w.value().numel(); i < n; ++i) {
      const float gi = g[i] * clip;
      m[i] = b1 * m[i] + (1.0f - b1) * gi;
      v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
      p[i] -= decay * p[i] + step_size * m[i] / (std::sqrt(v[i] * inv_bc2) + eps);
    }
  }
  return norm;
}

void Adam::zero_grad() {
  for (auto& p : params_)
    if (p.var.grad().defined()) p.var.grad_ref().zero();
}

std::vector<NamedParameter> Adam::state() const {
  std::vector<NamedParameter> out;
  for (size_t k = 0; k < params_.size(); ++k) {
    out.push_back({"m." + params_[k].name, Var(m_[k])});
    out.push_back({"v." + params_[k].name, Var(v_[k])});
  }
  return out;
}

void Adam::load_state(int64_t steps, const std::map<std::string, Tensor>& moments, const std::string& origin) {
  if (steps < 0) throw std::runtime_error(origin + ": Adam step count " + std::to_string(steps) + " is negative");
  assign_parameters(state(), moments, origin);
  t_ = steps;
}

float LrSchedule::at(int64_t step) const {
  const float s = static_cast<float>(std::max<int64_t>(step, 1));
  const float w = static_cast<float>(warmup);
  if (kind == Kind::kInverseSqrt) return warmup > 0 ? base * std::min(s / w, std::sqrt(w / s)) : base / std::sqrt(s);
  return (warmup > 0 && s < w) ? base * s / w : base;
}

LrSchedule::Kind parse_schedule(const std::string& name) {
  if (name == "constant") return LrSchedule::Kind::kConstant;
  if (name == "inverse-sqrt") return LrSchedule::Kind::kInverseSqrt;
  throw std::invalid_argument("unknown learning-rate schedule '" + name + "' (expected constant or inverse-sqrt)");
}

}  // namespace attend
