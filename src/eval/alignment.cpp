#include "attend/eval/alignment.h"

#include <algorithm>
#include <cmath>

namespace attend {

namespace {
size_t argmax(const std::vector<float>& row) {
  return static_cast<size_t>(std::max_element(row.begin(), row.end()) - row.begin());
}
}  // namespace

AlignmentStats alignment_stats(const AlignmentMatrix& w) {
  AlignmentStats st;
  const size_t T = w.size();
  if (T == 0 || w[0].empty()) return st;
  const size_t S = w[0].size();
  const double band = std::max(1.0, S / 10.0);
  size_t forward = 0;
  for (size_t t = 0; t < T; ++t) {
    double h = 0.0, near = 0.0;
    const double diag = T > 1 ? double(t) * (S - 1) / (T - 1) : 0.0;
    for (size_t s = 0; s < S; ++s) {
      const double p = w[t][s];
      if (p > 0.0) h -= p * std::log(p);
      if (std::fabs(double(s) - diag) <= band) near += p;
    }
    st.entropy += h;
    st.diagonality += near;
    if (t > 0 && argmax(w[t]) >= argmax(w[t - 1])) ++forward;
  }
  st.steps = T;
  st.entropy /= T;
  st.diagonality /= T;
  st.monotonicity = T > 1 ? double(forward) / (T - 1) : 1.0;
  return st;
}

void accumulate(AlignmentStats& total, const AlignmentStats& one) {
  const double n = double(total.steps) + one.steps;
  if (n == 0) return;
  auto mix = [&](double a, double b) { return (a * total.steps + b * one.steps) / n; };
  total.monotonicity = mix(total.monotonicity, one.monotonicity);
  total.entropy = mix(total.entropy, one.entropy);
  total.diagonality = mix(total.diagonality, one.diagonality);
  total.steps += one.steps;
}

std::string pharaoh(const AlignmentMatrix& w, size_t outputs) {
  std::string out;
  for (size_t j = 0; j < std::min(outputs, w.size()); ++j) {
    if (!out.empty()) out += ' ';
    out += std::to_string(argmax(w[j])) + "-" + std::to_string(j);
  }
  return out;
}

}  // namespace attend
