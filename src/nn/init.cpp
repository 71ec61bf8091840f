#include "attend/nn/init.h"

#include <cmath>
#include <stdexcept>
#include <vector>

namespace attend::init {

namespace {
thread_local bool g_skip = false;
}  // namespace

SkipScope::SkipScope() : previous_(g_skip) { g_skip = true; }
SkipScope::~SkipScope() { g_skip = previous_; }

void glorot_uniform(Tensor& w, Rng& rng) {
  if (w.ndim() != 2) throw std::invalid_argument("glorot_uniform: expected a 2-D weight, got " + w.shape().str());
  if (g_skip) return;
  uniform(w, std::sqrt(6.0f / static_cast<float>(w.size(0) + w.size(1))), rng);
}

void uniform(Tensor& w, float a, Rng& rng) {
  if (g_skip) return;
  float* p = w.data();
  for (int64_t i = 0, n = w.numel(); i < n; ++i) p[i] = (2.0f * rng.uniform() - 1.0f) * a;
}

void normal(Tensor& w, float std, Rng& rng) {
  if (g_skip) return;
  float* p = w.data();
  for (int64_t i = 0, n = w.numel(); i < n; ++i) p[i] = rng.normal() * std;
}

void orthogonal_blocks(Tensor& w, Rng& rng) {
  if (w.ndim() != 2 || w.size(0) == 0 || w.size(1) % w.size(0) != 0) {
    throw std::invalid_argument("orthogonal_blocks: expected [H, G*H], got " + w.shape().str());
  }
  if (g_skip) return;
  const int64_t H = w.size(0), G = w.size(1) / H, ld = w.size(1);
  std::vector<double> q(H * H);
  for (int64_t g = 0; g < G; ++g) {
    for (auto& x : q) x = rng.normal();
    // Rows of q become orthonormal, one after another.
    for (int64_t i = 0; i < H; ++i) {
      double* qi = &q[i * H];
      for (int64_t j = 0; j < i; ++j) {
        const double* qj = &q[j * H];
        double d = 0.0;
        for (int64_t k = 0; k < H; ++k) d += qi[k] * qj[k];
        for (int64_t k = 0; k < H; ++k) qi[k] -= d * qj[k];
      }
      double norm = 0.0;
      for (int64_t k = 0; k < H; ++k) norm += qi[k] * qi[k];
      norm = std::sqrt(norm);
      for (int64_t k = 0; k < H; ++k) qi[k] /= norm;
    }
    for (int64_t i = 0; i < H; ++i)
      for (int64_t k = 0; k < H; ++k) w.data()[i * ld + g * H + k] = static_cast<float>(q[i * H + k]);
  }
}

}  // namespace attend::init
