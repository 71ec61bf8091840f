#include "attend/ops/elementwise.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <stdexcept>

#include "kernels/vec_math.h"

namespace attend {

Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
  const int n = std::max(a.ndim(), b.ndim());
  std::vector<int64_t> dims(n);
  for (int i = 0; i < n; ++i) {
    const int ia = a.ndim() - n + i, ib = b.ndim() - n + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      throw std::invalid_argument(std::string(op) + ": shapes " + a.str() + " and " + b.str() + " do not broadcast");
    }
    dims[i] = da == 1 ? db : da;
  }
  return Shape(dims);
}

namespace {

// Index arithmetic of a broadcast binary op, padded to four dims.
struct Broadcast {
  int64_t dims[4];
  int64_t sa[4], sb[4];  // element strides of a and b in the output's index space (0 = stretched)
  bool same;             // a, b and out all have the same shape: plain flat loops

  Broadcast(const Shape& a, const Shape& b, const Shape& out) : same(a == out && b == out) {
    int64_t stride_a = 1, stride_b = 1;
    for (int i = 3; i >= 0; --i) {
      const int io = out.ndim() - 4 + i, ia = a.ndim() - 4 + i, ib = b.ndim() - 4 + i;
      dims[i] = io >= 0 ? out[io] : 1;
      const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
      sa[i] = da == 1 ? 0 : stride_a;
      sb[i] = db == 1 ? 0 : stride_b;
      stride_a *= da;
      stride_b *= db;
    }
  }

  // Calls f(out_index, a_index, b_index) for every output element.
  template <class F>
  void each(F&& f) const {
    int64_t o = 0;
    for (int64_t i0 = 0; i0 < dims[0]; ++i0)
      for (int64_t i1 = 0; i1 < dims[1]; ++i1)
        for (int64_t i2 = 0; i2 < dims[2]; ++i2) {
          const int64_t a0 = i0 * sa[0] + i1 * sa[1] + i2 * sa[2];
          const int64_t b0 = i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
          for (int64_t i3 = 0; i3 < dims[3]; ++i3, ++o) f(o, a0 + i3 * sa[3], b0 + i3 * sb[3]);
        }
  }
};

enum class BinOp { kAdd, kSub, kMul, kMin };

Var binary(const Var& a, const Var& b, BinOp op, const char* name) {
  const Shape out_shape = broadcast_shape(a.shape(), b.shape(), name);
  const Broadcast bc(a.shape(), b.shape(), out_shape);
  Tensor y = Tensor::empty(out_shape);
  const float* pa = a.value().data();
  const float* pb = b.value().data();
  float* py = y.data();
  if (bc.same) {  // the common case: plain arrays
    const int64_t n = y.numel();
    switch (op) {
      case BinOp::kAdd:
        for (int64_t i = 0; i < n; ++i) py[i] = pa[i] + pb[i];
        break;
      case BinOp::kSub:
        for (int64_t i = 0; i < n; ++i) py[i] = pa[i] - pb[i];
        break;
      case BinOp::kMul:
        for (int64_t i = 0; i < n; ++i) py[i] = pa[i] * pb[i];
        break;
      case BinOp::kMin:
        for (int64_t i = 0; i < n; ++i) py[i] = std::min(pa[i], pb[i]);
        break;
    }
  } else
    switch (op) {
      case BinOp::kAdd:
        bc.each([&](int64_t o, int64_t i, int64_t j) { py[o] = pa[i] + pb[j]; });
        break;
      case BinOp::kSub:
        bc.each([&](int64_t o, int64_t i, int64_t j) { py[o] = pa[i] - pb[j]; });
        break;
      case BinOp::kMul:
        bc.each([&](int64_t o, int64_t i, int64_t j) { py[o] = pa[i] * pb[j]; });
        break;
      case BinOp::kMin:
        bc.each([&](int64_t o, int64_t i, int64_t j) { py[o] = std::min(pa[i], pb[j]); });
        break;
    }
  return make_result(std::move(y), needs_grad({&a, &b}), [a, b, bc, op](Node& out) {
    const float* dy = out.grad.data();
    float* da = a.requires_grad() ? a.grad_ref().data() : nullptr;
    float* db = b.requires_grad() ? b.grad_ref().data() : nullptr;
    const float* pa = a.value().data();
    const float* pb = b.value().data();
    // forward: y = a + b | a - b | a * b
    bc.each([&](int64_t o, int64_t i, int64_t j) {
      switch (op) {
        case BinOp::kAdd:
          if (da) da[i] += dy[o];
          if (db) db[j] += dy[o];
          break;
        case BinOp::kSub:
          if (da) da[i] += dy[o];
          if (db) db[j] -= dy[o];
          break;
        case BinOp::kMul:
          if (da) da[i] += dy[o] * pb[j];
          if (db) db[j] += dy[o] * pa[i];
          break;
        case BinOp::kMin:  // y = min(a, b): the gradient goes to the one chosen
          if (pa[i] <= pb[j]) {
            if (da) da[i] += dy[o];
          } else if (db) {
            db[j] += dy[o];
          }
          break;
      }
    });
  });
}

// y = f(x) with dy/dx expressed through x and y; f is an element function or an array kernel.
template <class F, class DF>
Var unary(const Var& x, F f, DF dfdx) {
  Tensor y = Tensor::empty(x.shape());
  const float* px = x.value().data();
  float* py = y.data();
  const int64_t n = y.numel();
  if constexpr (std::is_invocable_v<F, const float*, float*, int64_t>) {
    f(px, py, n);
  } else {
    for (int64_t i = 0; i < n; ++i) py[i] = f(px[i]);
  }
  return make_result(std::move(y), needs_grad({&x}), [x, dfdx, n](Node& out) {
    const float* px = x.value().data();
    const float* py = out.value.data();
    const float* dy = out.grad.data();
    float* dx = x.grad_ref().data();
    for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * dfdx(px[i], py[i]);
  });
}

}  // namespace

Var add(const Var& a, const Var& b) { return binary(a, b, BinOp::kAdd, "add"); }
Var sub(const Var& a, const Var& b) { return binary(a, b, BinOp::kSub, "sub"); }
Var mul(const Var& a, const Var& b) { return binary(a, b, BinOp::kMul, "mul"); }
Var minimum(const Var& a, const Var& b) { return binary(a, b, BinOp::kMin, "minimum"); }

Var scale(const Var& x, float factor) {
  return unary(
      x, [factor](float v) { return v * factor; }, [factor](float, float) { return factor; });
}
// d tanh(x) = 1 - tanh(x)^2
Var tanh(const Var& x) {
  return unary(x, kernels::vtanh, [](float, float y) { return 1.0f - y * y; });
}
// d sigmoid(x) = y (1 - y)
Var sigmoid(const Var& x) {
  return unary(x, kernels::vsigmoid, [](float, float y) { return y * (1.0f - y); });
}
Var relu(const Var& x) {
  return unary(
      x, [](float v) { return v > 0.0f ? v : 0.0f; }, [](float v, float) { return v > 0.0f ? 1.0f : 0.0f; });
}
Var exp(const Var& x) {
  return unary(x, kernels::vexp, [](float, float y) { return y; });
}
Var log(const Var& x) {
  return unary(
      x, [](float v) { return std::log(v); }, [](float v, float) { return 1.0f / v; });
}

}  // namespace attend
