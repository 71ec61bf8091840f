#include "attend/ops/matmul.h"

#include <stdexcept>

#include "kernels/blas.h"

namespace attend {

namespace {
// Gradients of C = op(A) op(B) (accumulated into dA, dB; either may be null).
//   dA = dC op(B)^T            (A not transposed)   dA = op(B) dC^T   (A transposed)
//   dB = op(A)^T dC            (B not transposed)   dB = dC^T op(A)   (B transposed)
void matmul_backward(bool ta, bool tb, int M, int N, int K, const float* A, const float* B, const float* dC, float* dA,
                     float* dB) {
  const int lda = ta ? M : K, ldb = tb ? K : N;
  if (dA) {
    if (!ta)
      kernels::gemm(false, !tb, M, K, N, 1.0f, dC, N, B, ldb, 1.0f, dA, lda);
    else
      kernels::gemm(tb, true, K, M, N, 1.0f, B, ldb, dC, N, 1.0f, dA, lda);
  }
  if (dB) {
    if (!tb)
      kernels::gemm(!ta, false, K, N, M, 1.0f, A, lda, dC, N, 1.0f, dB, ldb);
    else
      kernels::gemm(true, ta, N, K, M, 1.0f, dC, N, A, lda, 1.0f, dB, ldb);
  }
}
}  // namespace

Var matmul(const Var& a, const Var& b, bool ta, bool tb) {
  if (a.ndim() != 2 || b.ndim() != 2) {
    throw std::invalid_argument("matmul: expected 2-D operands, got " + a.shape().str() + " and " + b.shape().str());
  }
  const int M = a.size(ta ? 1 : 0), K = a.size(ta ? 0 : 1);
  const int Kb = b.size(tb ? 1 : 0), N = b.size(tb ? 0 : 1);
  if (K != Kb) {
    throw std::invalid_argument("matmul: inner dimensions differ: " + a.shape().str() + (ta ? "^T" : "") + " x " +
                                b.shape().str() + (tb ? "^T" : ""));
  }
  Tensor c = Tensor::empty(Shape{M, N});
  kernels::gemm(ta, tb, M, N, K, 1.0f, a.value().data(), ta ? M : K, b.value().data(), tb ? K : N, 0.0f, c.data(), N);
  return make_result(std::move(c), needs_grad({&a, &b}), [a, b, ta, tb, M, N, K](Node& out) {
    matmul_backward(ta, tb, M, N, K, a.value().data(), b.value().data(), out.grad.data(),
                    a.requires_grad() ? a.grad_ref().data() : nullptr,
                    b.requires_grad() ? b.grad_ref().data() : nullptr);
  });
}

Var bmm(const Var& a, const Var& b, bool ta, bool tb) {
  if (a.ndim() != 3 || b.ndim() != 3 || a.size(0) != b.size(0)) {
    throw std::invalid_argument("bmm: expected [B,M,K] and [B,K,N], got " + a.shape().str() + " and " +
                                b.shape().str());
  }
  const int Bn = a.size(0);
  const int M = a.size(ta ? 2 : 1), K = a.size(ta ? 1 : 2);
  const int Kb = b.size(tb ? 2 : 1), N = b.size(tb ? 1 : 2);
  if (K != Kb) {
    throw std::invalid_argument("bmm: inner dimensions differ: " + a.shape().str() + (ta ? "^T" : "") + " x " +
                                b.shape().str() + (tb ? "^T" : ""));
  }
  Tensor c = Tensor::empty(Shape{Bn, M, N});
  const float* A = a.value().data();
  const float* Bp = b.value().data();
  for (int i = 0; i < Bn; ++i) {
    kernels::gemm(ta, tb, M, N, K, 1.0f, A + int64_t(i) * M * K, ta ? M : K, Bp + int64_t(i) * K * N, tb ? K : N, 0.0f,
                  c.data() + int64_t(i) * M * N, N);
  }
  return make_result(std::move(c), needs_grad({&a, &b}), [a, b, ta, tb, Bn, M, N, K](Node& out) {
    float* dA = a.requires_grad() ? a.grad_ref().data() : nullptr;
    float* dB = b.requires_grad() ? b.grad_ref().data() : nullptr;
    for (int i = 0; i < Bn; ++i) {
      const int64_t oa = int64_t(i) * M * K, ob = int64_t(i) * K * N;
      matmul_backward(ta, tb, M, N, K, a.value().data() + oa, b.value().data() + ob,
                      out.grad.data() + int64_t(i) * M * N, dA ? dA + oa : nullptr, dB ? dB + ob : nullptr);
    }
  });
}

Var linear(const Var& x, const Var& w, const Var& bias) {
  if (w.ndim() != 2 || x.ndim() < 1 || x.size(-1) != w.size(0)) {
    throw std::invalid_argument("linear: input " + x.shape().str() + " does not match weight " + w.shape().str() +
                                " ([In, Out])");
  }
  const int In = w.size(0), Out = w.size(1);
  if (bias.defined() && (bias.ndim() != 1 || bias.size(0) != Out)) {
    throw std::invalid_argument("linear: bias " + bias.shape().str() + " does not match weight " + w.shape().str());
  }
  const int N = x.value().numel() / In;
  std::vector<int64_t> dims = x.shape().vec();
  dims.back() = Out;
  Tensor y = Tensor::empty(Shape(dims));
  // y = x W (+ b broadcast over rows)
  kernels::affine(N, Out, In, x.value().data(), w.value().data(), bias.defined() ? bias.value().data() : nullptr,
                  y.data());
  return make_result(std::move(y), needs_grad({&x, &w, &bias}), [x, w, bias, N, In, Out](Node& out) {
    const float* dy = out.grad.data();
    if (x.requires_grad())  // dx = dy W^T
      kernels::gemm(false, true, N, In, Out, 1.0f, dy, Out, w.value().data(), Out, 1.0f, x.grad_ref().data(), In);
    if (w.requires_grad()) {  // dW = x^T dy
      if (N < kDeferRows && w.leaf_grad() && Tape::running()) {
        Tape::running()->defer_weight_grad(w.node(), x.value(), out.grad);
      } else {
        kernels::gemm(true, false, In, Out, N, 1.0f, x.value().data(), In, dy, Out, 1.0f, w.grad_ref().data(), Out);
      }
    }
    if (bias.defined() && bias.requires_grad()) {  // db = sum over rows of dy
      float* db = bias.grad_ref().data();
      for (int n = 0; n < N; ++n)
        for (int o = 0; o < Out; ++o) db[o] += dy[int64_t(n) * Out + o];
    }
  });
}

}  // namespace attend
