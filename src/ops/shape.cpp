#include "attend/ops/shape.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace attend {

// View ops (reshape, select, narrow) give their result a gradient that IS a view of the
// input's gradient: backward contributions land in the input's gradient directly, with no
// gradient tensor of their own and no copy. They record no backward function.
namespace {
Var view_result(const Var& x, Tensor value, const std::function<Tensor(Tensor&)>& grad_view) {
  const bool record = needs_grad({&x});
  Var out = make_result(std::move(value), record, nullptr);
  if (record) {
    out.node()->grad = grad_view(x.grad_ref());
    out.node()->leaf_grad = x.leaf_grad();  // a view of a leaf is as good as the leaf
    if (x.leaf_grad()) out.node()->grad_owner = x.node()->grad_owner ? x.node()->grad_owner : x.node();
  }
  return out;
}
}  // namespace

Var reshape(const Var& x, const Shape& shape) {
  return view_result(x, x.value().view(shape), [&](Tensor& g) { return g.view(shape); });  // throws on mismatch
}

namespace {
// A tensor viewed as [outer, extent(dim), inner].
struct Split {
  int64_t outer = 1, extent = 1, inner = 1;
  Split(const Shape& s, int dim) {
    for (int i = 0; i < dim; ++i) outer *= s[i];
    extent = s[dim];
    for (int i = dim + 1; i < s.ndim(); ++i) inner *= s[i];
  }
};
}  // namespace

Var concat(const std::vector<Var>& xs, int dim) {
  if (xs.empty()) throw std::invalid_argument("concat: no inputs");
  const Shape& s0 = xs[0].shape();
  dim = s0.normalize(dim);
  std::vector<int64_t> dims = s0.vec();
  dims[dim] = 0;
  for (const Var& x : xs) {
    bool ok = x.ndim() == s0.ndim();
    for (int i = 0; ok && i < s0.ndim(); ++i) ok = i == dim || x.size(i) == s0[i];
    if (!ok)
      throw std::invalid_argument("concat: " + x.shape().str() + " does not fit " + s0.str() + " along dim " +
                                  std::to_string(dim));
    dims[dim] += x.size(dim);
  }
  Tensor y = Tensor::empty(Shape(dims));
  const Split so(y.shape(), dim);
  int64_t offset = 0;
  bool record = false;
  for (const Var& x : xs) {
    const Split si(x.shape(), dim);
    const int64_t block = si.extent * si.inner;
    for (int64_t o = 0; o < si.outer; ++o)
      std::memcpy(y.data() + o * so.extent * so.inner + offset, x.value().data() + o * block, sizeof(float) * block);
    offset += block;
    const bool grad = needs_grad({&x});  // for every input: it notes the use (Tape::note_use)
    record = record || grad;
  }
  return make_result(std::move(y), record, [xs, dim](Node& out) {
    const Split so(out.value.shape(), dim);
    int64_t offset = 0;
    for (const Var& x : xs) {
      const Split si(x.shape(), dim);
      const int64_t block = si.extent * si.inner;
      if (x.requires_grad()) {
        float* dx = x.grad_ref().data();
        for (int64_t o = 0; o < si.outer; ++o) {
          const float* dy = out.grad.data() + o * so.extent * so.inner + offset;
          for (int64_t k = 0; k < block; ++k) dx[o * block + k] += dy[k];
        }
      }
      offset += block;
    }
  });
}

Var slice(const Var& x, int dim, int64_t start, int64_t length) {
  dim = x.shape().normalize(dim);
  if (start < 0 || length < 0 || start + length > x.size(dim)) {
    throw std::invalid_argument("slice: [" + std::to_string(start) + ", " + std::to_string(start + length) +
                                ") out of range for dim " + std::to_string(dim) + " of " + x.shape().str());
  }
  std::vector<int64_t> dims = x.shape().vec();
  dims[dim] = length;
  Tensor y = Tensor::empty(Shape(dims));
  const Split si(x.shape(), dim);
  const int64_t block = length * si.inner;
  for (int64_t o = 0; o < si.outer; ++o)
    std::memcpy(y.data() + o * block, x.value().data() + (o * si.extent + start) * si.inner, sizeof(float) * block);
  return make_result(std::move(y), needs_grad({&x}), [x, si, start, block](Node& out) {
    float* dx = x.grad_ref().data();
    for (int64_t o = 0; o < si.outer; ++o) {
      const float* dy = out.grad.data() + o * block;
      float* d = dx + (o * si.extent + start) * si.inner;
      for (int64_t k = 0; k < block; ++k) d[k] += dy[k];
    }
  });
}

Var stack(const std::vector<Var>& xs, int dim) {
  if (xs.empty()) throw std::invalid_argument("stack: no inputs");
  const Shape& s0 = xs[0].shape();
  if (dim < 0) dim += s0.ndim() + 1;
  if (dim < 0 || dim > s0.ndim())
    throw std::invalid_argument("stack: dim " + std::to_string(dim) + " out of range for " + s0.str());
  std::vector<int64_t> dims = s0.vec();
  dims.insert(dims.begin() + dim, 1);
  std::vector<Var> views;
  views.reserve(xs.size());
  for (const Var& x : xs) {
    check_same_shape(s0, x.shape(), "stack");
    views.push_back(reshape(x, Shape(dims)));
  }
  return concat(views, dim);
}

Var select(const Var& x, int64_t i) {
  if (x.ndim() < 1 || i < 0 || i >= x.size(0)) {
    throw std::invalid_argument("select: index " + std::to_string(i) + " out of range for " + x.shape().str());
  }
  std::vector<int64_t> dims = x.shape().vec();
  dims.erase(dims.begin());
  const Shape shape(dims);
  return view_result(x, x.value().narrow(i, 1).view(shape), [&](Tensor& g) { return g.narrow(i, 1).view(shape); });
}

Var narrow(const Var& x, int64_t start, int64_t length) {
  return view_result(x, x.value().narrow(start, length), [&](Tensor& g) { return g.narrow(start, length); });
}

Var transpose01(const Var& x) {
  if (x.ndim() < 2) throw std::invalid_argument("transpose01: needs at least 2 dims, got " + x.shape().str());
  std::vector<int64_t> dims = x.shape().vec();
  const int64_t A = dims[0], B = dims[1], inner = x.value().numel() / std::max<int64_t>(A * B, 1);
  std::swap(dims[0], dims[1]);
  Tensor y = Tensor::empty(Shape(dims));
  for (int64_t a = 0; a < A; ++a)
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(y.data() + (b * A + a) * inner, x.value().data() + (a * B + b) * inner, sizeof(float) * inner);
  return make_result(std::move(y), needs_grad({&x}), [x, A, B, inner](Node& out) {
    // forward: y[b, a] = x[a, b]  =>  dx[a, b] += dy[b, a]
    float* dx = x.grad_ref().data();
    const float* dy = out.grad.data();
    for (int64_t a = 0; a < A; ++a)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t k = 0; k < inner; ++k) dx[(a * B + b) * inner + k] += dy[(b * A + a) * inner + k];
  });
}

Var transpose12(const Var& x) {
  if (x.ndim() != 4) throw std::invalid_argument("transpose12: needs 4 dims, got " + x.shape().str());
  const int64_t A = x.size(0), B = x.size(1), C = x.size(2), D = x.size(3);
  Tensor y = Tensor::empty(Shape{A, C, B, D});
  for (int64_t a = 0; a < A; ++a)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t c = 0; c < C; ++c)
        std::memcpy(y.data() + ((a * C + c) * B + b) * D, x.value().data() + ((a * B + b) * C + c) * D,
                    sizeof(float) * D);
  return make_result(std::move(y), needs_grad({&x}), [x, A, B, C, D](Node& out) {
    // forward: y[a, c, b] = x[a, b, c]  =>  dx[a, b, c] += dy[a, c, b]
    float* dx = x.grad_ref().data();
    const float* dy = out.grad.data();
    for (int64_t a = 0; a < A; ++a)
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c) {
          float* d = dx + ((a * B + b) * C + c) * D;
          const float* g = dy + ((a * C + c) * B + b) * D;
          for (int64_t k = 0; k < D; ++k) d[k] += g[k];
        }
  });
}

Var heads_from_columns(const Var& x, int64_t first, int64_t heads, int64_t head_dim) {
  if (x.ndim() != 3 || first < 0 || heads < 1 || head_dim < 1 || first > x.size(2) ||
      heads * head_dim > x.size(2) - first)
    throw std::invalid_argument("heads_from_columns: " + std::to_string(heads) + " heads of " +
                                std::to_string(head_dim) + " from column " + std::to_string(first) + " of " +
                                x.shape().str());
  const int64_t B = x.size(0), T = x.size(1), W = x.size(2), H = heads, D = head_dim;
  Tensor y = Tensor::empty(Shape{B, H, T, D});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        std::memcpy(y.data() + ((b * H + h) * T + t) * D, x.value().data() + (b * T + t) * W + first + h * D,
                    sizeof(float) * D);
  return make_result(std::move(y), needs_grad({&x}), [x, first, B, T, W, H, D](Node& out) {
    // forward: y[b, h, t] = x[b, t, first + h D]  =>  dx[b, t, first + h D] += dy[b, h, t]
    float* dx = x.grad_ref().data();
    const float* dy = out.grad.data();
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t)
        for (int64_t h = 0; h < H; ++h) {
          float* d = dx + (b * T + t) * W + first + h * D;
          const float* g = dy + ((b * H + h) * T + t) * D;
          for (int64_t k = 0; k < D; ++k) d[k] += g[k];
        }
  });
}

Tensor gather_rows(const Tensor& x, const std::vector<int>& index) {
  std::vector<int64_t> dims = x.shape().vec();
  const int64_t row = x.numel() / std::max<int64_t>(dims[0], 1);
  const int64_t n = dims[0];
  dims[0] = static_cast<int64_t>(index.size());
  Tensor y = Tensor::empty(Shape(dims));
  for (size_t j = 0; j < index.size(); ++j) {
    if (index[j] < 0 || index[j] >= n) {
      throw std::invalid_argument("gather_rows: index " + std::to_string(index[j]) + " out of range for " +
                                  x.shape().str());
    }
    std::memcpy(y.data() + j * row, x.data() + index[j] * row, sizeof(float) * row);
  }
  return y;
}

}  // namespace attend
