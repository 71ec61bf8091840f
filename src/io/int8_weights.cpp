#include "attend/io/int8_weights.h"

#include <cmath>
#include <stdexcept>

#include "kernels/int8_gemm.h"

namespace attend {

namespace {

constexpr int kStoredRange = 127;  // files keep 8 bits whatever CPU writes them (int8_gemm.h)

bool per_row(const std::string& name) {  // an embedding table: one scale per token
  const std::string suffix = "embedding.weight";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// w [R, C] quantized per row (by_row) or per column: q of w's shape, scales [R, 1] or [1, C].
void quantize_matrix(const Tensor& w, bool by_row, Int8Tensor& q, Tensor& scale) {
  const int64_t R = w.size(0), C = w.size(1);
  q.shape = w.shape(), q.values.assign(size_t(R * C), 0);
  if (by_row) {
    scale = Tensor(Shape{R, 1});
    kernels::quantize_rows(w.data(), R, static_cast<int>(C), kStoredRange, q.values.data(), scale.data());
    return;
  }
  std::vector<float> t(size_t(R * C));  // w^T: columns as rows
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) t[size_t(c * R + r)] = w.data()[r * C + c];
  std::vector<int8_t> qt(t.size());
  scale = Tensor(Shape{1, C});
  kernels::quantize_rows(t.data(), C, static_cast<int>(R), kStoredRange, qt.data(), scale.data());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) q.values[size_t(r * C + c)] = qt[size_t(c * R + r)];
}

// q * scale for one stored weight, after checking the scale.
Tensor dequantize(const std::string& name, const Tensor& q, const Tensor& scale, const std::string& origin) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error(origin + ": int8 tensor '" + name + "': " + what);
  };
  if (q.ndim() != 2) fail("shape " + q.shape().str() + ": only 2-D weights are stored in int8 (the rest is F32)");
  const int64_t R = q.size(0), C = q.size(1);
  const bool by_row = scale.shape() == Shape{R, 1}, by_column = scale.shape() == Shape{1, C};
  if (!by_row && !by_column)
    fail("scale '" + name + ".scale' has shape " + scale.shape().str() + ", expected " + Shape{1, C}.str() + " or " +
         Shape{R, 1}.str());
  for (int64_t i = 0; i < scale.numel(); ++i)
    if (!(scale.data()[i] >= 0.0f) || !std::isfinite(scale.data()[i]))
      fail("scale element " + std::to_string(i) + " is " + std::to_string(scale.data()[i]) +
           " (scales are finite and >= 0)");
  Tensor w(q.shape());
  for (int64_t r = 0; r < R; ++r)
    for (int64_t c = 0; c < C; ++c) {
      const float v = q.data()[r * C + c];
      if (v < -127.0f) fail("element " + std::to_string(r * C + c) + " is -128 (the range is -127..127)");
      w.data()[r * C + c] = v * scale.data()[by_row ? r : c];
    }
  return w;
}

}  // namespace

StoredInt8 quantize_for_storage(const std::vector<NamedParameter>& params) {
  StoredInt8 out;
  for (const auto& p : params) {
    if (p.var.ndim() != 2) {
      out.f32.push_back(p);
      continue;
    }
    Int8Tensor q;
    q.name = p.name;
    Tensor scale;
    quantize_matrix(p.var.value(), per_row(p.name), q, scale);
    out.i8.push_back(std::move(q));
    out.f32.push_back({p.name + ".scale", Var(scale)});
  }
  return out;
}

void dequantize_stored(std::map<std::string, Tensor>& tensors, const std::set<std::string>& int8,
                       const std::string& origin) {
  for (const std::string& name : int8) {
    const auto scale = tensors.find(name + ".scale");
    if (scale == tensors.end())
      throw std::runtime_error(origin + ": int8 tensor '" + name + "' has no F32 scale '" + name + ".scale'");
    if (int8.count(scale->first))
      throw std::runtime_error(origin + ": tensor '" + scale->first + "' is I8; scales are F32");
    tensors[name] = dequantize(name, tensors.at(name), scale->second, origin);
    tensors.erase(scale);
  }
}

}  // namespace attend
